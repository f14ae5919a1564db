"""Importers into the dataset format: metrical-tracker (metrical.py), VHAP/GaussianAvatars (vhap.py), MEAD (mead.py)."""
