"""Language-model engines (local SLM, later Gemini) behind one streaming interface."""
