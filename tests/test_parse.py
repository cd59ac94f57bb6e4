from curation.generate.parse import ReplySchema, parse_question, parse_reply


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


def test_brackets_in_qa_lines_do_not_hide_the_pairs():
    text = (
        "Q1: Compare the totals for [2019, 2020].\nA1: 12 in 2019, 15 in 2020 Source [3].\n"
        "R1: Both years are in the table.\nE1: pages [1, 2]"
    )
    result = parse_reply(text)
    assert qa(result) == [
        ("Compare the totals for [2019, 2020].", "12 in 2019, 15 in 2020 Source [3].")
    ]
    assert result.pairs[0].evidence_pages == [1, 2]
    assert result.errors == []


def test_numbered_markdown_list_with_bold_labels():
    text = (
        "Here are 2 pairs:\n\n1. **Question:** What is the load rating?\n   **Answer:** 180 kg.\n"
        "2. **Question:** Which tools? **Answer:** A *10 mm* spanner."
    )
    assert qa(parse_reply(text)) == [
        ("What is the load rating?", "180 kg."),
        ("Which tools?", "A 10 mm spanner."),
    ]


def test_json_with_trailing_commas_inside_prose():
    text = 'Here is the JSON:\n{"pairs": [{"question": "Why?", "answer": "Because.",},]}\nThanks!'
    assert qa(parse_reply(text)) == [("Why?", "Because.")]


def test_short_bullet_list_answer_keeps_its_items():
    text = "**Q1:** Which symptoms?\n**A1:**\n* Fever\n• Cough\n\n**Q2:** When to call?\n**A2:** Chest pain."
    assert parse_reply(text).pairs[0].answer == "- Fever\n- Cough"


def test_citations_are_kept_and_emphasis_removed():
    result = parse_reply(
        "Q1: What does **the author** say?\nA1: It costs $2.1B [4] (p. 12), per _Smith_."
    )
    assert qa(result) == [("What does the author say?", "It costs $2.1B [4] (p. 12), per Smith.")]


def test_code_and_math_are_not_taken_for_emphasis():
    text = "Q1: What must __init__ call?\nA1: super().__init__(), with max_retry_count set and $x_i * y_i$ summed."
    assert qa(parse_reply(text))[0][1] == (
        "super().__init__(), with max_retry_count set and $x_i * y_i$ summed."
    )


def test_reply_cut_off_at_max_tokens_rejects_the_last_pair():
    text = "Q1: One?\nA1: Yes.\nQ2: How long is the route?\nA2: About 42 kilometres, with"
    assert qa(parse_reply(text)) == [
        ("One?", "Yes."),
        ("How long is the route?", "About 42 kilometres, with"),
    ]
    result = parse_reply(text, cut_off=True)
    assert qa(result) == [("One?", "Yes.")]
    assert result.errors == ["reply cut off at max_tokens in this pair: 'How long is the route?'"]


def test_json_cut_off_keeps_the_whole_items():
    text = '[{"question": "A?", "answer": "a."}, {"question": "B?", "answer": "b'
    result = parse_reply(text, cut_off=True)
    assert qa(result) == [("A?", "a.")]
    assert len(result.errors) == 1 and "cut off" in result.errors[0]


def test_refusal_and_unanswerable_give_no_pairs():
    refusal = parse_reply("I'm sorry, but I can't help with that. Could you share the text?")
    assert refusal.pairs == [] and refusal.errors == ["no question-answer pairs found in the reply"]
    unanswerable = parse_reply("Unanswerable.")
    assert unanswerable.pairs == [] and "unanswerable" in unanswerable.errors[0]


def test_closing_remark_is_not_part_of_the_last_answer():
    text = "Q1: Who signed?\nA1: Dr. Okafor.\n\nLet me know if you need more!"
    assert qa(parse_reply(text)) == [("Who signed?", "Dr. Okafor.")]


def test_a_second_answer_paragraph_before_the_next_pair_is_kept():
    """Prose after a blank line is the answer's next paragraph when another pair follows; only
    after the last pair is it a closing remark."""
    reply = (
        "Q1: What happened to revenue in 2020?\nA1: Revenue fell.\n\n"
        "It fell because the stores closed for two months.\n"
        "Q2: Who is the CEO?\nA2: Jane Doe.\n\nLet me know if you need more."
    )
    parsed = parse_reply(reply)
    assert [(p.question, p.answer) for p in parsed.pairs] == [
        (
            "What happened to revenue in 2020?",
            "Revenue fell. It fell because the stores closed for two months.",
        ),
        ("Who is the CEO?", "Jane Doe."),
    ]
    assert parsed.errors == []


def test_a_reply_cut_at_a_line_break_keeps_its_finished_last_pair():
    """max_tokens hit right after a finished answer line: the pair is whole; hit inside the
    line, it is a reject with the reason."""
    finished = "Q1: What was built in 1871?\nA1: The Harbour Point lighthouse.\n"
    parsed = parse_reply(finished, cut_off=True)
    assert [(p.question, p.answer) for p in parsed.pairs] == [
        ("What was built in 1871?", "The Harbour Point lighthouse.")
    ]
    cut = parse_reply(finished.rstrip("\n") + " It was", cut_off=True)
    assert cut.pairs == []
    assert cut.errors == ["reply cut off at max_tokens in this pair: 'What was built in 1871?'"]


def test_a_table_cut_off_at_max_tokens_rejects_its_last_row():
    reply = (
        "| # | Question | Answer |\n|---|---|---|\n"
        "| 1 | How many lamps were repaired? | 412. |\n"
        "| 2 | Who leads the team? | Ines Va"
    )
    result = parse_reply(reply, cut_off=True)
    assert [p.answer for p in result.pairs] == ["412."]
    assert len(result.errors) == 1 and "Who leads the team?" in result.errors[0]


def test_a_table_cut_off_before_its_question_cell_is_a_reject_not_a_crash():
    reply = (
        "| # | Topic | Question | Answer |\n|---|---|---|---|\n"
        "| 1 | Lamps | How many lamps were repaired? | 412. |\n| 2 | Budg"
    )
    result = parse_reply(reply, cut_off=True)
    assert [p.answer for p in result.pairs] == ["412."]
    assert len(result.errors) == 1 and "| 2 | Budg" in result.errors[0]


def test_a_table_inside_an_answer_stays_the_answer():
    reply = "Q1: What does the table give?\nA1:\n| Year | Lamps |\n|---|---|\n| 2023 | 412 |\n"
    [pair] = parse_reply(reply).pairs
    assert pair.answer == "| Year | Lamps |\n|---|---|\n| 2023 | 412 |"


def test_a_yaml_alias_bomb_in_a_reply_is_not_expanded():
    # A "billion laughs" fits in a few hundred tokens: the reply's YAML goes through the one
    # YAML reader, whose alias bound refuses it (the reply is then read line by line).
    levels = ["  laughs: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha]"]
    levels += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    reply = "```yaml\n- question: Why?\n  answer: Because.\n" + "\n".join(levels) + "\n```"
    result = parse_reply(reply)
    assert [p.question for p in result.pairs] == ["Why?"]
    assert len(result.pairs[0].answer) < 2000


def test_think_blocks_are_dropped_wherever_they_are():
    reply = "<think>Q1: Draft?\nA1: Draft.</think>\nQ1: Real?\nA1: Yes.\n<THINK>more drafts"
    assert [(p.question, p.answer) for p in parse_reply(reply).pairs] == [("Real?", "Yes.")]


SPAN = "The Harlow pump moved 4,200 litres in its first hour of work."


def test_answer_first_reply_is_its_question_with_the_span_as_answer():
    """The question line, its `Question:` label and what the model ran on to after the question
    mark left out; the answer is the span, cited on its page."""
    result = parse_question(
        "Question: **How much did the Harlow pump move?** It moved a lot.", SPAN, 3
    )
    assert result.errors == []
    (pair,) = result.pairs
    assert (pair.question, pair.answer, pair.evidence_pages) == (
        "How much did the Harlow pump move?",
        SPAN,
        [3],
    )


def test_answer_first_reply_without_a_question_about_its_span_is_rejected():
    cases = {
        "Question: The answer to this question would be the pump.": "no question in the reply",
        "Question: How much did the Harlow pump": "reply cut off before its question mark",
        "Question: What is 1% of 25?": "question shares no word with its answer span",
        "Question: How much did the pump move in 1998?": "question names 1998, its answer span does not",
    }
    for reply, reason in cases.items():
        result = parse_question(reply, SPAN, 1, cut_off="cut off" in reason)
        assert result.pairs == [] and result.errors[0].startswith(reason), reply
