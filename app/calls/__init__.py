"""The call loop only: one Twilio media stream from `start` to hang-up.

A `CallSession` composes parts that each own their state: the reader (wire messages → events),
the floor (who speaks when: turn-taking, speculation, barge-in, backchannels), the responder (a
turn → reply frames), the pump (frames and marks → socket) and the turn ledger (what was said
and heard). `hub.CallHub` holds a replica's live calls. Agent lookup (app.agents), shared call
state (app.call_state) and stored transcripts (app.transcripts) live elsewhere.
"""
