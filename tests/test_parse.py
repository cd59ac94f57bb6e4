from curation.generate.parse import ReplySchema, parse_reply


def qa(result):
    return [(p.question, p.answer) for p in result.pairs]


def test_numbered_qa_lines():
    text = "Q1: Who chairs the board?\nA1: Elena Marsh.\nQ2: How many customers?\nA2: 48,200 customers."
    result = parse_reply(text)
    assert qa(result) == [
        ("Who chairs the board?", "Elena Marsh."),
        ("How many customers?", "48,200 customers."),
    ]
    assert result.errors == []


def test_question_answer_words_and_markdown():
    text = "Here you go:\n**Question 1:** What fell?\n**Answer 1:** Water loss fell to 11%.\n\nQuestion: Why?\nAnswer: Leak detection."
    assert qa(parse_reply(text)) == [
        ("What fell?", "Water loss fell to 11%."),
        ("Why?", "Leak detection."),
    ]


def test_multiline_answer_is_kept_whole():
    result = parse_reply("Q1: List the towns.\nA1: Three towns:\n- Ashford\n- Bramley")
    assert result.pairs[0].answer == "Three towns:\n- Ashford\n- Bramley"


def test_cut_off_question_is_reported():
    result = parse_reply("Q1: One?\nA1: Yes.\nQ2: Two?")
    assert qa(result) == [("One?", "Yes.")]
    assert len(result.errors) == 1 and "without an answer" in result.errors[0]


def test_mismatched_numbers_pair_in_order():
    assert qa(parse_reply("Q6: Six?\nA7: Seven.")) == [("Six?", "Seven.")]


def test_bare_json_list():
    result = parse_reply('[{"question": "Q?", "answer": "A.", "evidence_pages": [1, 2]}]')
    assert qa(result) == [("Q?", "A.")]
    assert result.pairs[0].evidence_pages == [1, 2]


def test_json_in_code_fence_with_prose():
    text = 'Sure!\n```json\n{"pairs": [{"question": "Why?", "answer": "Because.", "rationale": "p2"}]}\n```\nHope this helps.'
    result = parse_reply(text)
    assert qa(result) == [("Why?", "Because.")]
    assert result.pairs[0].rationale == "p2"


def test_json_items_missing_fields_are_reported():
    result = parse_reply(
        '{"pairs": [{"question": "Only a question"}, {"q": "Short?", "a": "Keys."}]}'
    )
    assert qa(result) == [("Short?", "Keys.")]
    assert "JSON item 0" in result.errors[0]


def test_unusable_replies_give_a_reason():
    assert parse_reply("").errors == ["empty reply"]
    assert parse_reply("I cannot help with that.").errors == [
        "no question-answer pairs found in the reply"
    ]
    assert parse_reply("{not json at all").pairs == []


def test_schema_is_a_json_schema():
    schema = ReplySchema.model_json_schema()
    assert schema["properties"]["pairs"]["type"] == "array"
