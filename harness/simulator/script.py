"""Scripted calls: caller lines from text (spoken by the local TTS) or WAV files, replies
transcribed by the local STT, audio and JSON saved. Used by `velox call`, tests and benchmarks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.audio import resample_pcm16
from app.speech.base import SpeechToText, TextToSpeech
from app.telephony.audio import mulaw_to_pcm16
from harness.simulator.caller import CallerTurn, CallResult, load_wav_8k, mulaw_to_wav, place_call


@dataclass
class CallReport:
    """A finished scripted call, ready to print."""

    result: CallResult
    caller_lines: list[str]
    agent_lines: list[str]
    greeting_text: str
    json_path: Path
    failed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable transcript with per-turn latency."""
        r = self.result
        if r.rejected:
            return [f"Call rejected: {r.rejected_say!r}"]
        out = [f"call {r.call_sid}  stream {r.stream_sid}"]
        if r.greeting_latency_s is not None:
            out.append(f"  agent  ({r.greeting_latency_s * 1000:.0f} ms): {self.greeting_text}")
        for turn, caller, agent in zip(r.turns, self.caller_lines, self.agent_lines, strict=False):
            out.append(f"  caller: {caller}")
            v2v = f"{turn.voice_to_voice_s * 1000:.0f} ms" if turn.voice_to_voice_s else "no reply"
            out.append(f"  agent  ({v2v}): {agent}")
            if turn.barge_in_stop_s is not None:
                out.append(f"  (barge-in: agent stopped {turn.barge_in_stop_s * 1000:.0f} ms in)")
        out.append(f"ended by {r.ended_by}; {len(r.violations)} protocol violations")
        out += [f"  ! {v}" for v in r.violations[:10]]
        return out


async def speak_lines(tts: TextToSpeech, lines: list[str]) -> list[bytes]:
    """Each line as 8 kHz PCM16, synthesized with the local voice."""
    out = []
    for line in lines:
        pcm = bytearray()
        rate = 22050
        async for chunk in tts.stream(line):
            pcm += chunk.pcm16
            rate = chunk.sample_rate
        out.append(resample_pcm16(bytes(pcm), rate, 8000))
    return out


async def transcribe_mulaw(stt: SpeechToText, mulaw: bytes) -> str:
    """What the agent said, as the caller heard it."""
    if not mulaw:
        return ""
    return (await stt.transcribe(mulaw_to_pcm16(mulaw), 8000)).text


async def run_scripted_call(
    base_url: str,
    *,
    lines: list[str],
    wavs: list[Path] | None = None,
    dtmf: str | None = None,
    to_number: str = "+15550100",
    auth_token: str | None = None,
    save_dir: Path | None = None,
    transcribe: bool = True,
    tts: TextToSpeech | None = None,
    stt: SpeechToText | None = None,
    timeout_s: float = 60,
    patience_s: float = 2.5,
) -> CallReport:
    """Place one call that says `lines` (then plays `wavs`) and report what happened.

    The caller speaks again (or hangs up) once the agent has been quiet for `patience_s`: long
    enough to sit through a holding phrase while a tool runs.
    """
    if tts is None and lines:
        from app.speech.piper_tts import PiperTTS

        tts = PiperTTS()
    audios = await speak_lines(tts, lines) if lines and tts else []
    texts = list(lines)
    for path in wavs or []:
        audios.append(load_wav_8k(path))
        texts.append(f"[{path.name}]")
    turns = [CallerTurn(audio_pcm16_8k=a, text=t) for a, t in zip(audios, texts, strict=True)]
    if dtmf:
        turns.insert(0, CallerTurn(audio_pcm16_8k=b"", text=f"[pressed {dtmf}]", dtmf=dtmf))
        texts.insert(0, f"[pressed {dtmf}]")
    result = await place_call(
        base_url,
        turns,
        to_number=to_number,
        auth_token=auth_token,
        timeout_s=timeout_s,
        reply_silence_s=patience_s,
    )
    agent_lines: list[str] = []
    greeting = ""
    if transcribe and not result.rejected:
        if stt is None:
            from app.speech.whisper_stt import WhisperSTT

            stt = WhisperSTT()
        greeting = await transcribe_mulaw(stt, result.greeting_audio)
        for turn in result.turns:
            agent_lines.append(await transcribe_mulaw(stt, turn.reply_audio))
    save_dir = save_dir or Path("var/recordings")
    folder = save_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{result.call_sid[-6:]}"
    folder.mkdir(parents=True, exist_ok=True)
    mulaw_to_wav(folder / "agent.wav", result.agent_audio)
    mulaw_to_wav(folder / "caller.wav", result.caller_audio)
    payload = result.to_dict()
    payload["transcript"] = {"greeting": greeting, "caller": texts, "agent": agent_lines}
    json_path = folder / "call.json"
    json_path.write_text(json.dumps(payload, indent=2))
    failed = result.rejected or any(t.timed_out for t in result.turns)
    return CallReport(result, texts, agent_lines, greeting, json_path, failed=failed)
