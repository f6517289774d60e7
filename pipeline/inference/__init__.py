"""Inference: the engine (load a detector, encode prompts, score and generate) and what turns a generation into a
verdict (parsing, evidence grounding); shared by evaluation, archive scoring and serving."""
