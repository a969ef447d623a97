"""Language-model engines behind one streaming interface (llama.cpp on CPU, vLLM on a GPU, Gemini
Flash and Pro), the turn plan the routing policy decides, and the tiered model that carries it
out: serving, falling back and escalating between the tiers."""
