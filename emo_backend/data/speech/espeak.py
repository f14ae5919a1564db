"""Speech with exact phoneme timings from espeak-ng's C library (libespeak-ng.so.1), through ctypes.

espeak-ng runs in AUDIO_OUTPUT_SYNCHRONOUS mode: `espeak_Synth` returns only
after every sample has been handed to our synth callback, together with the
events of that buffer. With espeakINITIALIZE_PHONEME_EVENTS those events
include one espeakEVENT_PHONEME per phoneme, carrying the phoneme's espeak
mnemonic and its position in the audio (milliseconds). (The `--pho` route of
the espeak-ng program needs MBROLA voices, which are not available.)

The library keeps global state, so every call holds one process-wide lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

from emo_backend.errors import EmoSplatError

LIBRARY_NAME = "libespeak-ng.so.1"

# speak_lib.h constants (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
RATE_MIN_WPM, RATE_MAX_WPM = 80, 450


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of this message's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phoneme:
    """One phoneme of synthesized speech: espeak mnemonic and its span in seconds."""

    symbol: str
    start_s: float
    end_s: float


class EspeakUnavailableError(EmoSplatError):
    """libespeak-ng could not be loaded or initialised."""


class _Engine:
    """The loaded library, initialised once per process."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL(LIBRARY_NAME)
        except OSError as err:
            raise EspeakUnavailableError(
                f"cannot load {LIBRARY_NAME} ({err}); install espeak-ng (e.g. `apt-get install espeak-ng`)"
            ) from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int

        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise EspeakUnavailableError(
                "espeak-ng failed to initialise (its voice data, espeak-ng-data, was not found); reinstall espeak-ng"
            )
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        # Keep a reference: ctypes frees the thunk if the Python object dies.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._events.append((name, int(event.audio_position)))
            if event.type == _EVENT_MSG_TERMINATED:
                break
            i += 1
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, voice: str, rate_wpm: int, pitch: int) -> tuple[np.ndarray, list[tuple[str, int]]]:
        if self.lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
            raise EmoSplatError(f"espeak-ng has no voice {voice!r}; list voices with `espeak-ng --voices`")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        status = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != _EE_OK:
            raise EmoSplatError(f"espeak-ng failed to synthesize the text (error {status})")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples.astype(np.int16, copy=False), list(self._events)


_lock = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def espeak_available() -> bool:
    """Whether libespeak-ng.so.1 loads and initialises in this process."""
    with _lock:
        try:
            _get_engine()
            return True
        except EspeakUnavailableError:
            return False


def _is_pause(symbol: str) -> bool:
    return symbol.startswith("_") or symbol == ""


def synthesize(
    text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50
) -> tuple[np.ndarray, int, list[Phoneme]]:
    """Speak `text`; return (samples int16 [N] mono, sample rate Hz, phonemes in time order).

    Each phoneme ends where the next event begins (the last one at the end of the
    audio). Pauses (espeak's `_` phonemes) are dropped from the list; what they
    cover is silence. `pitch` is espeak's 0-100 base pitch (50 = the voice's own).
    """
    if not text.strip():
        raise EmoSplatError("cannot synthesize empty text")
    if not RATE_MIN_WPM <= rate_wpm <= RATE_MAX_WPM:
        raise EmoSplatError(f"speech rate {rate_wpm} wpm is outside espeak's {RATE_MIN_WPM}..{RATE_MAX_WPM}")
    if not 0 <= pitch <= 100:
        raise EmoSplatError(f"pitch {pitch} is outside espeak's 0..100")
    with _lock:
        engine = _get_engine()
        samples, events = engine.synthesize(text, voice, rate_wpm, pitch)
        rate = engine.sample_rate
    duration = len(samples) / rate
    phonemes: list[Phoneme] = []
    for k, (symbol, start_ms) in enumerate(events):
        start = min(start_ms / 1000.0, duration)
        end = min(events[k + 1][1] / 1000.0, duration) if k + 1 < len(events) else duration
        if _is_pause(symbol) or end <= start:
            continue
        phonemes.append(Phoneme(symbol, start, end))
    return samples, rate, phonemes
