"""RULER's needle-in-a-haystack wording (upstream's niah template, answer prefix and needle), shared by the
evaluation that asks it and by a corpus that teaches a short-context model the format before it is extended."""

from __future__ import annotations

NIAH_TEMPLATE = ("Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
                 "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
                 "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?")
NIAH_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
NEEDLE = "One of the special magic {type_v} for {key} is: {value}."


def singular(text: str) -> str:
    """RULER rewords the niah template when exactly one value is asked for."""
    return text.replace("Some", "A").replace("are all", "is").replace("are", "is").replace("answers", "answer")


def single_number_sample(key: str, value: str, context: str) -> str:
    """One niah_single sample as a training text: the prompt around `context` (which holds the needle), the answer
    prefix and the answer, exactly as the evaluation lays them out."""
    prompt = singular(NIAH_TEMPLATE).format(type_needle_v="number", query=key, context=context)
    return prompt + singular(NIAH_PREFIX).format(type_needle_v="number", query=key) + f" {value}."
