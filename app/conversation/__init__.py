"""What the agent says: the agent's configuration, prompt building, history and sentence pacing."""
