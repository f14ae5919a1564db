"""Data: the tracked-clip dataset format, importers, speech and the synthetic actor's plan.

    schema.py      dataset.json + tracking fields, validation (format version 1)
    dataset.py     load_dataset / check_dataset / DatasetWriter / iter_frames
    rotations.py   6D and axis-angle conversions for importers
    importers/     metrical-tracker, VHAP/GaussianAvatars, MEAD (PyAV decoding in media.py)
    speech/        espeak-ng synthesis with phoneme timings; phonemes -> visemes -> AU/jaw curves
    synth.py       the synthetic actor corpus plan
    mesh_raster.py mesh rasterisation (see that module)
"""
