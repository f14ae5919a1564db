"""Emotion: the 8-category space and emotion strings (`space`), keyframed curves (`curves`, `interpolate`),
valence/arousal (`circumplex`), text prompts (`text`, optional extra), blinks (`blink`) and the EMFACS
action-unit recipes (`facs`)."""
