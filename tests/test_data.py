"""Labelled data files read as they are, with one clear sentence for every mistake; the movie reviews."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inferforge.errors import UserError
from inferforge.labelled_data import (MOVIE_REVIEW_SHA256, DataColumns, answer_texts, class_ids, movie_review_file,
                                      movie_review_sentences, read_calibration_texts, read_labelled_data,
                                      similarity_scores, tag_sequences, write_labelled_csv)


def test_movie_reviews_split_is_deterministic_and_labelled_by_sign(movie_reviews):
    import hashlib

    assert hashlib.sha256(movie_review_file().read_bytes()).hexdigest() == MOVIE_REVIEW_SHA256
    sentences = movie_review_sentences()
    assert len(sentences) == 10605
    nonzero_unique = {s.text for s in sentences if s.score != 0}
    assert len(movie_reviews.test) == 2000
    assert len(movie_reviews.train) + len(movie_reviews.test) == len(nonzero_unique)
    assert not {s.text for s in movie_reviews.train} & {s.text for s in movie_reviews.test}
    assert all((s.label == "positive") == (s.score > 0) for s in movie_reviews.test)
    positives = sum(s.label == "positive" for s in movie_reviews.test)
    assert 900 < positives < 1100  # the source is about half positive
    from inferforge.labelled_data import movie_review_split

    again = movie_review_split()
    assert [s.id for s in again.test] == [s.id for s in movie_reviews.test]


def test_csv_with_custom_columns_and_pairs(tmp_path):
    path = tmp_path / "nli.csv"
    path.write_text('premise,hypothesis,gold\n"A man, smiling",He is happy,positive\nIt rains,It is dry,0\n')
    data = read_labelled_data(path, DataColumns(text="premise", pair="hypothesis", label="gold"))
    assert data.texts == ["A man, smiling", "It rains"]
    assert data.pairs == ["He is happy", "It is dry"]
    assert class_ids(data, ["negative", "positive"]).tolist() == [1, 0]
    assert data.lines == [2, 3]


def test_round_trip_through_write_labelled_csv(tmp_path, movie_reviews):
    rows = movie_reviews.test[:50]
    path = tmp_path / "test.csv"
    write_labelled_csv(path, [s.text for s in rows], [s.label for s in rows])
    data = read_labelled_data(path)
    assert data.texts == [s.text for s in rows] and data.pairs is None
    assert class_ids(data, ["negative", "positive"]).tolist() == [int(s.score > 0) for s in rows]


def test_jsonl_for_every_task_shape(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [
        {"text": ["Alice", "lives", "in", "Paris"], "label": ["B-PER", "O", "O", "B-LOC"], "q": "Where?",
         "ctx": "In Paris.", "answers": {"text": ["Paris", "in Paris"]}, "score": 4.5},
        {"text": ["Bob", "sleeps"], "label": "B-PER O", "q": "Who?", "ctx": "Bob.", "answers": "Bob", "score": "1"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    tokens = read_labelled_data(path, text_is_list=True)
    assert tokens.texts == ["Alice lives in Paris", "Bob sleeps"]
    assert tag_sequences(tokens, ["O", "B-PER", "B-LOC"]) == [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O"]]
    qa = read_labelled_data(path, DataColumns(text="q", pair="ctx", label="answers", pair_required=True))
    assert answer_texts(qa) == [["Paris", "in Paris"], ["Bob"]]
    sts = read_labelled_data(path, DataColumns(text="q", pair="ctx", label="score"))
    assert similarity_scores(sts).tolist() == [4.5, 1.0]


def test_calibration_texts_from_txt_and_csv(tmp_path):
    txt = tmp_path / "calib.txt"
    txt.write_text("first text\n\n  second text  \n")
    assert read_calibration_texts(txt) == (["first text", "second text"], None)
    csv_path = tmp_path / "calib.csv"
    csv_path.write_text("text,label\nhello,positive\n")
    assert read_calibration_texts(csv_path) == (["hello"], None)
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(UserError, match="no text"):
        read_calibration_texts(tmp_path / "empty.txt")


BAD_FILES = [
    ("missing.csv", None, "does not exist"),
    ("empty.csv", "", "no data rows"),
    ("header.csv", "text,label\n", "no data rows"),
    ("nolabel.csv", "text,sentiment\nok,positive\n", "no column 'label'.*columns found: text, sentiment"),
    ("blank.csv", "text,label\nfine,\n", "'label' is empty at line 2"),
    ("extra.csv", "text,label\na,b,c\n", "more cells than the header"),
    ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", \n', "Line 2 .* not valid JSON"),
    ("array.jsonl", '["a", "b"]\n', "not a JSON object"),
    ("rows.xlsx", "text,label\n", "use a .csv, .tsv or .jsonl"),
]


@pytest.mark.parametrize("name,content,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_one_clear_user_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_labelled_data(path)


def test_not_utf8_is_a_user_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9,positive\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_labelled_data(path)


def test_unknown_labels_and_bad_values(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\ngood,positive\nbad,negativ\n")
    data = read_labelled_data(path)
    with pytest.raises(UserError, match="Unknown label 'negativ' at line 3 .*negative, positive"):
        class_ids(data, ["negative", "positive"])
    with pytest.raises(UserError, match="Unknown label '2'"):
        class_ids(read_labelled_data(_write(tmp_path / "ids.csv", "text,label\nx,2\n")), ["negative", "positive"])
    with pytest.raises(UserError, match="3 words but 2 tags"):
        tag_sequences(read_labelled_data(_write(tmp_path / "t.csv", "text,label\na b c,O O\n")), ["O"])
    with pytest.raises(UserError, match="Unknown tag 'B-ORG'"):
        tag_sequences(read_labelled_data(_write(tmp_path / "t2.csv", "text,label\na,B-ORG\n")), ["O", "B-PER"])
    with pytest.raises(UserError, match="not a number"):
        similarity_scores(read_labelled_data(_write(tmp_path / "s.csv", "text,label\na,high\n")))
    with pytest.raises(UserError, match="no column 'context'"):
        read_labelled_data(path, DataColumns(pair="context", pair_required=True))


def _write(path, text):
    path.write_text(text)
    return path


def test_class_ids_accept_names_and_ids(tmp_path):
    data = read_labelled_data(_write(tmp_path / "r.csv", "text,label\na,1\nb,negative\nc, positive \n"))
    assert np.array_equal(class_ids(data, ["negative", "positive"]), [1, 0, 1])
