"""Speech for the synthetic actor: espeak-ng synthesis (espeak.py) and mouth curves from phonemes (visemes.py)."""
