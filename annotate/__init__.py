"""Data generation for Turkish visual instruction tuning.

    python -m annotate instruct   LLaVA-style instruction data from captions + object boxes
    python -m annotate translate  an English LLaVA dataset to Turkish, structure kept
    python -m annotate cot        LLaVA-CoT reasoning traces checked against ground-truth answers
    python -m annotate human      a Gradio tool for writing Turkish question-answer pairs by hand

The generators talk to any OpenAI-compatible chat endpoint (OpenAI, vLLM, `python -m cosmos_llava serve`)
and share one runner: bounded concurrency, retries, resumable JSONL output, validation with rejects.
"""
