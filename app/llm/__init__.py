"""Language-model engines behind one streaming interface (llama.cpp on CPU, vLLM on a GPU, Gemini
Flash and Pro), and the tiered router that serves, escalates and falls back between them."""
