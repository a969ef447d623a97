"""What the agent says and does: the conversation engine (one turn, on calls and in the
playground), the routing policy and its turn plan, flows, the agent's profile, grounding and
caller sentiment. The tools live in app.tools, speech pacing in app.speech.pieces."""
