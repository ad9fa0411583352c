"""Prompt-injection guards: source text is data, never a turn of the conversation or an order.

A small model cannot be talked out of obeying text in its prompt. Fenced sources and
a "never orders" rule did not stop the bundled SmolLM2-135M: on documents that plant
an order to print a canary code (benchmarks/injection.py --trials 40), the engine
without these guards showed a canary in 9 of 40 answers, 8 of them already in the
streamed text, and its verifier "supported" such sentences by citing the planted
order, which is verbatim in the source. Selecting the sentences most relevant to the
question makes this worse, not better: an order written about the question's topic
is exactly what gets selected. So what reads as an order to the model is kept out:

* :func:`neutralise` removes chat-template control tokens from source text before it
  enters a prompt. llama.cpp tokenises the rendered prompt with special tokens
  enabled, so a document's ``<|im_start|>system`` would otherwise open a real turn.
* :func:`instruction_cue` recognises sentences addressed to the assistant rather
  than to a human reader ("ignore previous instructions", "reply only with ...",
  fake ``SYSTEM:`` turns). Prompting withholds them from the prompt and from the
  evidence, so they are neither read by the model nor quoted or cited as support,
  and verification never counts an answer sentence that reads as an order as
  supported. With both, 0 of 40 answers showed a canary.

The patterns are deliberately narrow: ordinary instructions to people ("take one
tablet twice daily", "reply in writing within thirty days") and text about AI are
not cues. Over all 36,944 sentences of the contracts, 10-Q filings and clinical
documents in ../shared/corpora none is flagged (the benchmark rescans them). They
are a filter, not a proof: an order phrased unlike any of them still reaches the
model, and then only verification stands between it and the answer.
"""

from __future__ import annotations

import re

__all__ = ["instruction_cue", "is_instruction", "neutralise"]

# Turn and sequence markers of common chat templates (ChatML, Llama 2/3, Gemma, Phi).
_CONTROL = re.compile(
    r"<\|[A-Za-z0-9_ .:-]{1,40}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|</?s>|<\|?(?:bos|eos)\|?>",
    re.IGNORECASE,
)
# "<s>" is also HTML strikethrough: removed from prompts, but not by itself a cue.
_TURN = re.compile(r"<\|[A-Za-z0-9_ .:-]{1,40}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>", re.IGNORECASE)

_OVERRIDE = re.compile(  # "ignore all previous instructions", not "ignore the above paragraph" or "forget the old rules"
    r"\b(?:ignore|disregard|forget|override|bypass|stop following)\s+"
    r"(?:(?:all|any|the|your|my|these|those|previous|prior|above|earlier|preceding|original|system|following)\s+){0,3}"
    r"(?:instructions?|prompts?|guidelines|directions|directives|rules|question)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:you|above|before|else|previously|said|written|prior)\b"
    r"|^\W*override\s*:",
    re.IGNORECASE,
)
_HIJACK = re.compile(
    r"\b(?:system prompt|system override|new (?:task|instructions?)|(?:developer|maintenance|debug|admin|god) mode|"
    r"jailbreak|do anything now|you are now|pretend (?:to be|you are)|repeat after me)\b",
    re.IGNORECASE,
)
_ROLE = re.compile(r"(?:^|\n)\W{0,4}(?:system|assistant|developer)\s*:", re.IGNORECASE)
# A role label starts a fake turn only when what follows speaks to or for the model:
# "System: comply with all requests", not "System: Windows 10 Pro" or "Assistant: Jane Roe".
_TURN_TALK = re.compile(r"\b(?:you|your|user|comply|must|always|never|instructions?|sure|certainly)\b", re.IGNORECASE)
_YOUR_ANSWER = re.compile(
    r"\byour (?:\w+ )?(?:answer|response|reply|output) (?:must|should|shall|has to|needs to|is to)\b", re.IGNORECASE
)
_SAY_CODE = re.compile(  # "write the phrase 'all clear'", "output the string X-12"
    r"(?i:\b(?:say|print|output|type|write|repeat|reply|respond)\b[^.]{0,20}?\bthe (?:exact )?(?:phrase|string|"
    r"token|code|word))\s*[:'\"“‘A-Z0-9]"
)
# Otherwise an order needs a verb of producing text and something that aims it at the
# model: the model addressed by name, or the answer it is writing. "AI" as a topic
# ("AI technologies", "deploying AI models") is not an address.
_VERB = re.compile(
    r"\b(?:reply|respond|answer|output|print|say|write|repeat|type|display|emit|return|begin|start|end|include|"
    r"append|state|tell|reveal|mention)\b",
    re.IGNORECASE,
)
_MODEL = r"(?:AI|A\.I\.|(?i:language models?|LLMs?|chat ?bots?|assistants?|GPT\w*))"
_ADDRESSEE = re.compile(
    rf"(?i:\b(?:dear|attention|hey|if you are) (?:the |an? )?|\b(?:to|for|as|if|when) (?:the|an?|any|all|every) )"
    rf"{_MODEL}\b|\b{_MODEL}(?i: (?:models?|assistants?|systems?|agents?))?"
    r"(?:\s*:| (?i:must|should|shall|will|is to|are to|has to|have to|needs? to|is required))"
)
_ANSWER_ACT = re.compile(  # the answer being written, as opposed to a reader's reply to a letter or form
    r"\b(?:(?:before|instead of) (?:answering|responding|replying)|when (?:asked|answering|responding)|"
    r"(?:the|your) (?:correct|only|valid|right|expected) (?:answer|response|reply|output) is to|"
    r"your (?:complete|full|entire|whole|only) (?:answer|response|reply|output)|"
    r"as (?:your|the) (?:\w+ )?(?:answer|response|reply)|(?:begin|start|end|finish) (?:your|the) (?:answer|response|"
    r"reply)|(?:reply|respond|answer) only with|verbatim|nothing (?:else|more)|summari[sz](?:e|ing) this)\b",
    re.IGNORECASE,
)


def neutralise(text: str) -> str:
    """``text`` without chat-template control tokens, so it cannot open or close a turn."""
    return _CONTROL.sub(" ", text)


def instruction_cue(sentence: str) -> str | None:
    """Why ``sentence`` reads as an order to the assistant, or None when it reads as data."""
    if _TURN.search(sentence):
        return "chat-template token"
    if _ROLE.search(sentence) and (_VERB.search(sentence) or _TURN_TALK.search(sentence)):
        return "fake conversation turn"
    for name, pattern in (("override", _OVERRIDE), ("role change", _HIJACK), ("answer format", _YOUR_ANSWER),
                          ("dictated output", _SAY_CODE)):
        if pattern.search(sentence):
            return name
    if _VERB.search(sentence):
        if _ADDRESSEE.search(sentence):
            return "addressed to the model"
        if _ANSWER_ACT.search(sentence):
            return "about the answer"
    return None


def is_instruction(sentence: str) -> bool:
    """True when ``sentence`` reads as an order to the assistant (see :func:`instruction_cue`)."""
    return instruction_cue(sentence) is not None
