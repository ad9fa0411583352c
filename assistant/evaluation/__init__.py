"""Evaluation of retrieval and answers against a question set (``slm eval``).

    from assistant.evaluation import load_questions, build_configs, run_config
    questions = load_questions("shared/eval/legal-cuad-dev.jsonl")
    result = run_config(build_configs(settings)[0], questions)   # the index must exist
    print(result.retrieval["doc_hit"])

The metrics port the reference scorer (``shared/eval/score.py``) exactly; see
``docs/eval.md`` for the question format and what each metric means.
"""

from assistant.evaluation.metrics import KS, RetrievedChunk, answer_correct, score_question, score_retrieval
from assistant.evaluation.questions import EvidenceItem, Question, QuestionSetError, load_questions
from assistant.evaluation.runner import (
    AnswerScores,
    Config,
    ConfigResult,
    EvalRun,
    QuestionRecord,
    assign_indexes,
    build_configs,
    run_config,
)

__all__ = [
    "KS",
    "AnswerScores",
    "Config",
    "ConfigResult",
    "EvalRun",
    "EvidenceItem",
    "Question",
    "QuestionRecord",
    "QuestionSetError",
    "RetrievedChunk",
    "answer_correct",
    "assign_indexes",
    "build_configs",
    "load_questions",
    "run_config",
    "score_question",
    "score_retrieval",
]
