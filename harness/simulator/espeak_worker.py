"""Speaks phrases with espeak-ng in a process of its own: `python espeak_worker.py < request`.

Run as a script by `harness.simulator.voices`, one process per caller line. espeak-ng keeps
state between utterances (its wave generator's phase and flutter carry on from one utterance to
the next), so the same text with the same voice sounds a few samples different depending on
what was said before. A fresh process always starts from the same state; and espeak-ng seeds the
generator of its voices' breath and noise from the clock (`espeak_srand(time(NULL))` in
`espeak_ng_Initialize`), so the worker seeds it again from the request. Together they make each
line exactly reproducible; a process costs ~40 ms.

Request (JSON on stdin): {"seed": 7, "voice": "en-us+f3", "rate": 150, "pitch": 60, "range": 50,
"texts": ["Hi,", "what time..."]}. Answer on stdout: the sample rate as a little-endian uint32,
then per text its sample count (uint32) and that many little-endian int16 samples.
"""

from __future__ import annotations

import ctypes
import json
import struct
import sys
from typing import Any

# espeak-ng's speak_lib.h: espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE, flags.
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def synthesize(request: dict[str, Any]) -> tuple[int, list[bytes]]:
    """The sample rate and each text's PCM16 (little-endian) as espeak-ng speaks it."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    rate = int(
        lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
    )
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate})")
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed(int(request["seed"]))
    audio = bytearray()

    def collect(wav: Any, count: int, _events: Any) -> int:
        if count > 0:
            audio.extend(ctypes.string_at(wav, 2 * count))
        return 0  # 0: go on synthesizing

    callback = _SynthCallback(collect)  # kept referenced until synthesis is over
    lib.espeak_SetSynthCallback(callback)
    voice = str(request["voice"])
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r}")
    for parameter, key in ((ESPEAK_RATE, "rate"), (ESPEAK_PITCH, "pitch"), (ESPEAK_RANGE, "range")):
        if request.get(key) is not None:
            lib.espeak_SetParameter(parameter, int(request[key]), 0)
    out: list[bytes] = []
    for text in request["texts"]:
        audio.clear()
        data = str(text).encode()
        status = lib.espeak_Synth(
            data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed ({status}) on {text!r}")
        lib.espeak_Synchronize()
        out.append(bytes(audio))
    lib.espeak_Terminate()
    return rate, out


def main() -> None:
    """Read one request from stdin, write the audio to stdout."""
    rate, pieces = synthesize(json.loads(sys.stdin.read()))
    stream = sys.stdout.buffer
    stream.write(struct.pack("<I", rate))
    for pcm in pieces:
        stream.write(struct.pack("<I", len(pcm) // 2))
        stream.write(pcm)
    stream.flush()


if __name__ == "__main__":
    main()
