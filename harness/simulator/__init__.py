"""A Twilio stand-in that places simulated calls against a Velox server."""

from harness.simulator.caller import (
    CallerTurn,
    CallResult,
    CallSetupError,
    RawStream,
    SimulatedCall,
    TurnResult,
    load_wav_8k,
    mulaw_to_wav,
    open_stream,
    place_call,
    save_wav,
)

__all__ = [
    "CallResult",
    "CallSetupError",
    "CallerTurn",
    "RawStream",
    "SimulatedCall",
    "TurnResult",
    "load_wav_8k",
    "mulaw_to_wav",
    "open_stream",
    "place_call",
    "save_wav",
]
