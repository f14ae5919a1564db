"""Audio: loading any clip as mono 16 kHz (`loading`), features on the video frame grid (`features`:
built-in log-mel), pretrained speech encoders from a local folder (`encoders`)."""
