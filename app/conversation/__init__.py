"""What the agent says and does: the conversation engine (one turn, on calls and in the
playground), the routing policy, the tools and their registry, flows, the agent's profile,
grounding, sentence pacing and caller sentiment."""
