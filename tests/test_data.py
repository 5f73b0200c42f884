"""Labelled data files read as they are, with one clear sentence for every mistake; the movie reviews."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

from inferforge.errors import UserError
from inferforge.labelled_data import (MOVIE_REVIEW_SHA256, DataColumns, LabelResolver, answer_texts, class_ids,
                                      movie_review_file,
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
    ("nolabel.csv", "text,stars\nok,5\n", "no label column .columns found: text, stars; looked for label, .*--label-column"),
    ("blank.csv", "text,label\nfine,\n", "'label' is empty at line 2"),
    ("extra.csv", "text,label\na,b,c\n", "more cells than the header"),
    ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", \n', "Line 2 .* not valid JSON"),
    ("broken.json", '{"text": "a", "label": "x"}\n{"text": "b", \n', "Line 2 .* not valid JSON"),
    ("array.jsonl", '["a", "b"]\n', "not a JSON object"),
    ("rows.docx", "text,label\n", "use a .csv, .tsv, .jsonl, .json, .parquet, .arrow, .xlsx, .conll, .conllu or BRAT "
                                   ".ann file"),
    ("rows.xlsx", "text,label\n", "rows.xlsx is not a readable Excel workbook \\(File is not a zip file; an encrypted "),
    ("rows.xls", "text,label\n", "rows.xls is an Excel 97-2003 workbook, which is not read; save the sheet as .xlsx"),
    ("rows.parquet", "PAR1", "rows.parquet is not a readable Parquet file .*write it again .ds.to_parquet"),
    ("lfs.parquet", "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n", "Git LFS pointer, not the data"),
    ("rows.arrow", "not arrow at all", "rows.arrow is not a readable Arrow file"),
    ("ragged.json", '{"text": ["a", "b"], "label": [1]}', "columns of .* have different lengths .text: 2, label: 1."),
    ("short.conllu", "1\tEU\teu\tPROPN\n", "Line 1 of .* has 4 tab-separated columns where CoNLL-U has 10"),
    ("two.csv", "sentence,review,label\na,b,1\n", "several possible text columns .sentence, review.; .*--text-column"),
    ("notext.csv", "phrase,label\na,1\n", "no text column .columns found: phrase, label; looked for text, sentence"),
    ("array.json", '[{"text": "a", "label": 1},\n {"text": "b" "label": 2}]', "Line 2 of .* not valid JSON"),
    ("tagless.conll", "EU B-ORG\nrejects\n", "Line 2 of .* has no tag"),
    ("pipes.csv", "text|label\nfine|1\n", "header of .* is one column, 'text|label': its cells look separated by "
                                         "'|', not commas; save it as a comma-separated .csv"),
    ("commas.tsv", "text,label\nfine,1\n", "look separated by commas, not tabs"),
    # json.dumps writes a missing value as NaN: a missing cell, not the text 'nan' or the label 'nan'
    # a blank text is a row left out (said); no text in any row is refused
    ("nantext.jsonl", '{"text": NaN, "label": 0}\n{"text": null, "label": 1}\n', "'text' is empty in every row of "),
    ("nanlabel.json", '[{"text": "ok", "label": 0},\n {"text": "fine", "label": NaN}]', "'label' is empty at line 2"),
    # no header line (CoLA's and Yelp's own files): said so, not 'no text column (columns found: 2, Great food...)'
    ("cola.tsv", "gj04\t1\t\tOur friends will not buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n",
     "cola.tsv has no header line: its first line "
     "\\('gj04', '1', '', 'Our friends will not buy this ...'\\) holds a number or a text where column names go"),
    ("yelp.csv", '"2","Great food"\n"1","Slow"\n', "yelp.csv has no header line: its first line \\('2', 'Great food'\\)"),
    # two cells under one name: the csv module kept the last, silently
    ("twice.csv", "text,label,label\ngood,positive,negative\n", "The header of .*twice.csv names column 'label' 2 "
                                                                 "times, so which of them holds the label is unclear"),
]


@pytest.mark.parametrize("name,content,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_one_clear_user_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_labelled_data(path)


def test_text_that_is_not_utf8_is_read_in_its_code_page_and_said_or_refused_when_damaged(tmp_path):
    """A latin-1 / cp1252 file (Excel's plain CSV on Western European Windows) was refused as 'not UTF-8': it is read as
    cp1252, and the note names the first byte that is not UTF-8. UTF-8 damaged in one place, and a binary file, are
    refused naming the line; no traceback."""
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me \x93ok\x94,positive\n".encode("latin-1"))
    data = read_labelled_data(path)
    assert data.texts == ["caf\xe9 cr\xe8me \u201cok\u201d"] and data.labels == ["positive"]
    assert data.notes == (f"{path} is not UTF-8 (byte 0xE9 on line 2 is not), so it is read as Windows-1252 (cp1252, "
                          f"Western European), as Excel and Notepad write text on Western European Windows; if letters "
                          f"look wrong in the output, save the file as UTF-8",)
    path.write_bytes(b"text,label\ncaf\xe9 \x81,positive\n")  # 0x81: no cp1252 character
    assert "read as ISO-8859-1 (latin-1)" in read_labelled_data(path).notes[0]
    path.write_bytes("text,label\n".encode() + "caf\xe9 ol\xe9,positive\n".encode() * 5 + b"caf\xe9,negative\n")
    with pytest.raises(UserError, match=r"is UTF-8 text but for 1 byte \(the first, 0xE9, on line 7\): it is damaged"):
        read_labelled_data(path)
    path.write_bytes(b"text,label\n" + bytes(range(256)))
    with pytest.raises(UserError, match=r"is not a text file: it holds binary bytes \(the first on line 2\)"):
        read_labelled_data(path)


@pytest.mark.parametrize("codec, texts", [
    ("cp1251", ["Отличный фильм, очень понравился.", "Скучно и затянуто, не советую."]),  # Excel on Russian Windows
    ("gbk", ["这部电影非常好看，演员很出色。", "太无聊了，不推荐。"]),
])
def test_a_file_of_another_script_in_its_code_page_is_read_in_it_not_as_western_european(tmp_path, codec, texts):
    """Russian from Excel (cp1251) or Chinese (GBK) text was read as cp1252: accented Latin letters the model scored
    silently (the same rows scored 95 % against 100 % in UTF-8), with a note only. Where most letters are bytes of 0x80
    or more the file is not Western European: it is read in the code page found for it, and the note says which. Greek
    that the detector takes for a Latin code page, and Japanese that reads as Korean about as well, are refused, not
    misread."""
    path = tmp_path / f"{codec}.csv"
    path.write_bytes(("text,label\n" + "".join(f'"{t}",{g}\n' for t, g in zip(texts, ["positive", "negative"])))
                     .encode(codec))
    data = read_labelled_data(path)
    assert data.texts == texts and data.labels == ["positive", "negative"]
    assert len(data.notes) == 1 and "is not UTF-8" in data.notes[0] and "cp1252" not in data.notes[0]
    path.write_bytes("text,label\nΠολύ καλή ταινία.,positive\nΒαρετή.,negative\n".encode("cp1253"))
    with pytest.raises(UserError, match=r"is not UTF-8 \(byte 0xD0 on line 2 is not\) and its letters are not Western "
                                        r"European, so its encoding cannot be told; save the file as UTF-8"):
        read_labelled_data(path)
    path.write_bytes("text,label\nこの映画はとても面白かった。,positive\nつまらない映画でした。,negative\n"
                     .encode("shift_jis"))
    with pytest.raises(UserError, match=r"its bytes read as text in more than one code page \(.*cp932.*\), so its "
                                        r"encoding cannot be told; save the file as UTF-8"):
        read_labelled_data(path)


def test_unknown_labels_and_bad_values(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\ngood,positive\nbad,negatve\n")  # a typo, not a prefix
    data = read_labelled_data(path)
    with pytest.raises(UserError, match="Unknown label 'negatve' at line 3 .*negative, positive"):
        class_ids(data, ["negative", "positive"])
    with pytest.raises(UserError, match=r"Unknown label '2' .*\(or their ids 0-1\); if the data numbers its classes "
                                        r"from 1 \(as Yelp's and Amazon's polarity CSVs do\), shift them to 0-1"):
        class_ids(read_labelled_data(_write(tmp_path / "ids.csv", "text,label\nx,2\n")), ["negative", "positive"])
    with pytest.raises(UserError, match=r"Unknown label '3' .*\(or their ids 0-1\)\.$"):  # not one past the last id
        class_ids(read_labelled_data(_write(tmp_path / "ids3.csv", "text,label\nx,3\n")), ["negative", "positive"])
    with pytest.raises(UserError, match="3 words but 2 tags"):
        tag_sequences(read_labelled_data(_write(tmp_path / "t.csv", "text,label\na b c,O O\n")), ["O"])
    with pytest.raises(UserError, match=r"None of the entity types of .*t2.csv \(ORG\) is one the model tags \(PER\), "
                                        r"e.g. tag 'B-ORG' at line 2 of .*; evaluate on data labelled with the model's"):
        tag_sequences(read_labelled_data(_write(tmp_path / "t2.csv", "text,label\na,B-ORG\n")), ["O", "B-PER"])
    # a type the model lacks beside ones it has is scored (missed), and named; an id without a name has no type
    mixed = read_labelled_data(_write(tmp_path / "t3.csv", "text,label\na b c,B-ORG I-ORG B-PER\nd,misc\n"))
    resolver = LabelResolver(mixed, ["O", "B-PER"])
    assert tag_sequences(mixed, ["O", "B-PER"], resolver) == [["B-ORG", "I-ORG", "B-PER"], ["I-misc"]]
    assert resolver.mapping()["entity_types_missing_from_model"] == ["ORG", "misc"]
    with pytest.raises(UserError, match="Unknown tag '7' at line 3"):
        tag_sequences(read_labelled_data(_write(tmp_path / "t4.csv", "text,label\na,B-PER\nb,7\n")), ["O", "B-PER"])
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


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_string_labels_match_as_dataset_class_names_do(tmp_path, suffix):
    """One resolver for every source: case, punctuation and a unique prefix (imdb's neg/pos), as for ClassLabel names."""
    rows = [("a", "pos"), ("b", "neg"), ("c", "Not-Entailment"), ("d", "Positive"), ("e", "1")]
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        _write(path, "text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    else:
        _write(path, "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    data = read_labelled_data(path)
    model = ["NEGATIVE", "POSITIVE", "NOT_ENTAILMENT"]
    resolver = LabelResolver(data, model)
    assert class_ids(data, model, resolver).tolist() == [1, 0, 2, 1, 1]
    note = resolver.mapping()["note"]
    assert "pos = POSITIVE, neg = NEGATIVE, Not-Entailment = NOT_ENTAILMENT" in note and "Positive =" not in note
    # a number is an id, not the start of a name ("1" is id 1, 2 stars, not "1 star")
    stars = LabelResolver(data.subset([4]), ["1 star", "2 stars"])
    assert class_ids(data.subset([4]), None, stars).tolist() == [1]
    # a prefix of two labels is refused, naming both, whatever the source
    with pytest.raises(UserError, match=r"Label 'ne' at line \d+ of .*labels2.* is ambiguous: it is the start of "
                                        r"NEGATIVE and NEUTRAL; write more of the name\."):
        ambiguous = path.with_name(f"labels2{suffix}")
        if suffix == ".csv":
            _write(ambiguous, "text,label\na,neg\nb,ne\n")
        else:
            _write(ambiguous, '{"text": "a", "label": "neg"}\n{"text": "b", "label": "ne"}\n')
        class_ids(read_labelled_data(ambiguous), ["NEGATIVE", "NEUTRAL", "POSITIVE"])
    # tags go through the same resolver
    tags = read_labelled_data(_write(tmp_path / f"tags{suffix}", "text,label\nAnn Paris,b-per loc\n"
                                     if suffix == ".csv" else json.dumps({"text": "Ann Paris", "label": "b-per loc"})))
    assert tag_sequences(tags, ["O", "B-PER", "LOCATION"]) == [["B-PER", "LOCATION"]]

# ---- What users bring: the shapes Hugging Face datasets export, SQuAD and CoNLL files, found without options ----

def _task_columns(task_name, **names):
    from inferforge.evaluate import columns_for_task
    from inferforge.tasks import get_task

    return columns_for_task(get_task(task_name), names.get("text"), names.get("pair"), names.get("label"))


def test_glue_pair_csv_columns_are_detected_and_reported(tmp_path):
    # GLUE MRPC/RTE as datasets' to_csv writes them; the header's case does not matter
    path = _write(tmp_path / "rte.csv", 'Sentence1,sentence2,LABEL,idx\n"A man, smiling",He is happy,1,0\n'
                                        "It rains,It is dry,not_entailment,1\n")
    data = read_labelled_data(path, _task_columns("text-classification"))
    assert data.texts == ["A man, smiling", "It rains"] and data.pairs == ["He is happy", "It is dry"]
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("Sentence1", "sentence2", "LABEL")
    assert data.detected == ("text", "pair", "label")
    assert data.describe() == "text 'Sentence1', pair 'sentence2', label 'LABEL' (detected: text, pair, label), read as CSV"
    assert class_ids(data, ["ENTAILMENT", "NOT_ENTAILMENT"]).tolist() == [1, 1]


@pytest.mark.parametrize("suffix,module", [(".gz", "gzip"), (".bz2", "bz2"), (".xz", "lzma")])
def test_compressed_text_files_and_hub_folders(tmp_path, suffix, module):
    import importlib

    opener = importlib.import_module(module).open

    def packed(path, text):
        with opener(path, "wt", encoding="utf-8") as f:
            f.write(text)
        return path

    jsonl = packed(tmp_path / f"test.jsonl{suffix}", '{"text": "fine", "label": "positive"}\n{"text": "bad", "label": 0}\n')
    data = read_labelled_data(jsonl, _task_columns("text-classification"))
    assert data.texts == ["fine", "bad"] and data.file_format == "JSON Lines" and data.where(1) == f"line 2 of {jsonl}"
    tsv = packed(tmp_path / f"dev.tsv{suffix}", 'sentence\tlabel\n"Hello," he said.\t1\n')
    assert read_labelled_data(tsv, _task_columns("text-classification")).texts == ['"Hello," he said.']
    repo = tmp_path / "hub"
    (repo / "data").mkdir(parents=True)
    packed(repo / "data" / f"train.jsonl{suffix}", '{"text": "for calibration", "label": 1}\n')
    packed(repo / "data" / f"test.jsonl{suffix}", '{"text": "judged", "label": 1}\n')
    (repo / "data" / f"extra.parquet{suffix}").write_bytes(b"not read")
    assert read_labelled_data(repo).texts == ["judged"]
    assert read_calibration_texts(repo)[0] == ["for calibration"]
    assert read_calibration_texts(packed(tmp_path / f"calib.txt{suffix}", "one\ntwo\n"))[0] == ["one", "two"]
    broken = tmp_path / f"cut.csv{suffix}"
    broken.write_bytes(b"text,label\nnot compressed,1\n")
    with pytest.raises(UserError, match=rf"cut.csv{suffix} is not a readable {module} file \(.*\); download it again"):
        read_labelled_data(broken)


def test_raw_tsv_with_quotes_in_texts_keeps_one_row_per_line(tmp_path):
    # GLUE's own TSV files do not quote: a sentence that opens with a quote swallowed the next rows into one cell
    raw = _write(tmp_path / "dev_matched.tsv", 'index\tsentence1\tsentence2\tgold_label\n'
                 '0\t"Hello," he said.\tHe greeted someone.\tentailment\n'
                 '1\tThe 12" vinyl sold out.\tIt was a record.\tneutral\n'
                 '2\tNo quotes here.\tNone "at all.\tcontradiction\n')
    data = read_labelled_data(raw, _task_columns("text-classification"))
    assert data.texts == ['"Hello," he said.', 'The 12" vinyl sold out.', "No quotes here."]
    assert data.pairs == ["He greeted someone.", "It was a record.", 'None "at all.']
    assert data.labels == ["entailment", "neutral", "contradiction"] and data.lines == [2, 3, 4]
    # a TSV written with the csv module (or pandas) quotes as CSV does, and is read so
    quoted = tmp_path / "quoted.tsv"
    with quoted.open("w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([["text", "label"], ['"Hello," he said.', "1"], ["two\nlines", "0"]])
    data = read_labelled_data(quoted, _task_columns("text-classification"))
    assert data.texts == ['"Hello," he said.', "two\nlines"] and data.labels == ["1", "0"]


RUNAWAY_QUOTES = [  # a quote that opens a cell and is not closed where the cell ends
    ("open.csv", 'text,label\ngood movie,positive\n"bad start,negative\nfine,positive\nok then,negative\n',
     'Line 3 of .*open.csv opens a quote \\("\\) that is never closed'),  # was "'label' is empty at line 5"
    ("answers.csv", 'question,context,answers\nwho,Alice met Bob,Alice\nwhere,"Alice met Bob in Paris,Paris\n'
                    'when,Alice left in 2001,2001\n', "Line 3 of .* opens a quote .* never closed"),
    # closed by a quote in a later row: was 3 rows read without a word, the second 'bad start,negative\nfine,...'
    ("later.csv", 'text,label\ngood movie,positive\n"bad start,negative\nfine,positive\nthe 12" vinyl,negative\n'
                  'last,positive\n', "Line 3 of .* opens a quote .* that closes only on line 5, with more text after "
                                     "it, so lines 3-5 would be read as one cell; close the quote where its cell ends"),
    ("quoted.csv", 'text,label\ngood,1\n"bad start,0\nfine,1\n"quoted, fine",0\n', "Line 3 .* closes only on line 5"),
    ("multi.tsv", 'text\tlabel\ngood\tpositive\n"bad start\tnegative\nfine\tpositive\n"two\nlines"\tnegative\n',
     "Line 3 of .*multi.tsv opens a quote .* closes only on line 5"),
    # the swallowed rows pass the csv module's default field size limit: was "is not a readable CSV file (field larger ...)"
    ("huge.csv", 'text,label\nfirst,1\n"opened here,0\n' + "".join(f"row {i} of many,{i % 2}\n" for i in range(9000)),
     "Line 3 of .* opens a quote .* that is never closed, so the lines after it would be read as one cell"),
]


@pytest.mark.parametrize("name,content,message", RUNAWAY_QUOTES, ids=[r[0] for r in RUNAWAY_QUOTES])
def test_a_quote_that_swallows_rows_is_one_sentence_naming_its_line(tmp_path, name, content, message):
    with pytest.raises(UserError, match=message) as error:
        read_labelled_data(_write(tmp_path / name, content))
    assert "\n" not in str(error.value) and str(error.value).endswith('"").')


def test_quoted_line_breaks_are_read_and_the_row_count_said(tmp_path):
    """Quoted cells over several lines, well formed (the last one ends the file unclosed after its line break, as a
    cut-short writer leaves it): read, with a note that the rows are fewer than the lines, so that a stray quote
    closed right before a delimiter, which reads as well formed, is not silent either."""
    content = 'text,label\n"two\nlines, with ""quotes""",1\nplain,0\n"a, b",1\n"The 12"" vinyl\nsold",0\nlast,"1\n'
    data = read_labelled_data(_write(tmp_path / "multi.csv", content))
    assert data.texts == ['two\nlines, with "quotes"', "plain", "a, b", 'The 12" vinyl\nsold', "last"]
    assert data.labels == ["1", "0", "1", "0", "1\n"] and data.lines == [3, 4, 5, 7, 8]
    assert data.notes == (f"quoted cells of {tmp_path / 'multi.csv'} hold line breaks, so its rows are fewer than its "
                          f"lines (lines 2-3 are one row, and 1 more rows span several lines)",)
    stray = read_labelled_data(_write(tmp_path / "stray.csv", 'text,label\ngood,1\n"bad start,0\nfine,1\nthe 12",0\n'))
    assert len(stray) == 2 and stray.notes[0].endswith("(lines 3-5 are one row)")


@pytest.mark.parametrize("header,text,pair", [
    ("premise,hypothesis,label", "premise", "hypothesis"),       # MNLI / SNLI
    ("question1,question2,label", "question1", "question2"),     # QQP
    ("question,sentence,label", "question", "sentence"),         # QNLI
    ("question,passage,idx,label", "question", "passage"),       # SuperGLUE BoolQ (was: the question alone)
    ("query,passage,label", "query", "passage"),                 # reranker relevance grades
    ("idx,sentence,label", "sentence", None),                    # SST-2
    ("review,label", "review", None),
    ("text,sentence,label", "text", None),                       # the default wins over the usual names
])
def test_usual_text_columns(tmp_path, header, text, pair):
    n = len(header.split(","))
    path = _write(tmp_path / "d.csv", header + "\n" + ",".join(["0"] * (n - 1) + ["1"]) + "\n")
    data = read_labelled_data(path, _task_columns("text-classification"))
    assert (data.columns.text, data.columns.pair) == (text, pair)


def test_explicit_columns_win_and_must_exist(tmp_path):
    path = _write(tmp_path / "d.csv", "text,sentence,label,stars\nfrom text,from sentence,0,1\n")
    data = read_labelled_data(path, _task_columns("text-classification", text="sentence", label="stars"))
    assert data.texts == ["from sentence"] and data.labels == ["1"] and data.detected == ()
    assert data.pairs is None
    with pytest.raises(UserError, match="has no column 'hypothesis' .columns found: text, sentence, label, stars.; "
                                        "name the right one with --pair-column"):
        read_labelled_data(path, _task_columns("text-classification", pair="hypothesis"))
    with pytest.raises(UserError, match="'text' cannot be both the text and the label"):
        read_labelled_data(path, _task_columns("text-classification", label="text"))
    nli = _write(tmp_path / "nli.csv", "premise,hypothesis,sentence1,sentence2,label\na,b,c,d,0\n")
    with pytest.raises(UserError, match="several possible text pairs .sentence1 \\+ sentence2; premise \\+ hypothesis."):
        read_labelled_data(nli, _task_columns("text-classification"))
    picked = read_labelled_data(nli, _task_columns("text-classification", text="premise"))
    assert (picked.texts, picked.pairs) == (["a"], ["b"])  # the named text brings its usual partner


def test_token_classification_jsonl_from_datasets(tmp_path):
    # conll2003.to_json(): ints are the model's ids (config.json id2label); names may differ in case
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rows = [{"id": "0", "tokens": ["Alice", "met", "Bob", "in", "Paris"], "pos_tags": [1, 2, 1, 3, 1],
             "ner_tags": [1, 0, 1, 0, 3]},
            {"id": "1", "tokens": ["New", "York"], "pos_tags": [1, 1], "ner_tags": ["b-loc", "I-LOC"]}]
    path = _write(tmp_path / "train.json", "".join(json.dumps(r) + "\n" for r in rows))  # to_json writes JSON lines
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == ["Alice met Bob in Paris", "New York"]
    assert (data.columns.text, data.columns.label, data.file_format) == ("tokens", "ner_tags", "JSON Lines")
    assert tag_sequences(data, labels) == [["B-PER", "O", "B-PER", "O", "B-LOC"], ["B-LOC", "I-LOC"]]
    with pytest.raises(UserError, match="Unknown tag '7' at line 1 .* ids 0-4"):
        tag_sequences(read_labelled_data(_write(tmp_path / "x.jsonl", json.dumps({"tokens": ["a"], "ner_tags": [7]})),
                                         _task_columns("token-classification"), text_is_list=True), labels)


def test_token_classification_csv_with_list_cells(tmp_path):
    # to_csv goes through pandas: list columns become numpy reprs; JSON and Python lists are accepted too
    path = _write(tmp_path / "ner.csv", "tokens,ner_tags\n\"['EU' 'rejects' 'German']\",[3 0 1]\n"
                                        "\"[\"\"Bob\"\", \"\"sleeps\"\"]\",\"['B-PER', 'O']\"\n")
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == ["EU rejects German", "Bob sleeps"]
    assert tag_sequences(data, ["O", "B-PER", "I-PER", "B-LOC"]) == [["B-LOC", "O", "B-PER"], ["B-PER", "O"]]


def test_conll_file(tmp_path):
    path = _write(tmp_path / "test.conll", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
                                           "German JJ B-NP B-MISC\n\n\nPeter\tB-PER\nBlackburn\tI-PER\n")
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == ["EU rejects German", "Peter Blackburn"] and data.lines == [3, 8]
    assert data.file_format == "CoNLL"
    labels = ["O", "B-PER", "I-PER", "B-ORG", "B-MISC"]
    assert tag_sequences(data, labels) == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    for suffix in (".iob", ".bio"):
        assert read_labelled_data(_write(tmp_path / f"t{suffix}", "a O\n"), _task_columns("token-classification"),
                                  text_is_list=True).texts == ["a"]


SPAN_TEXT = "Dr. Jean-Luc Picard met Starfleet's (UFP) crew in Paris, 2364."
SPAN_WORDS = ("Dr . Jean - Luc Picard met Starfleet ' s ( UFP ) crew in Paris , 2364 .")
# Jean-Luc Picard (4-19); Starfleet (24-33), the span starting inside a word; UFP (37-40); Paris (50-55)
SPAN_TAGS = ["O", "O", "B-PER", "I-PER", "I-PER", "I-PER", "O", "B-ORG", "O", "O", "O", "B-ORG", "O", "O", "O",
             "B-LOC", "O", "O", "O"]
SPAN_LAYOUTS = {  # the same entities as each tool exports them
    "doccano.jsonl": {"id": 7, "text": SPAN_TEXT, "label": [[4, 19, "PER"], [25, 33, "ORG"], [37, 40, "ORG"],
                                                             [50, 55, "LOC"]]},
    "doccano-entities.jsonl": {"id": 7, "text": SPAN_TEXT, "relations": [], "entities": [
        {"id": i, "label": k, "start_offset": a, "end_offset": b}
        for i, (a, b, k) in enumerate([(50, 55, "LOC"), (4, 19, "PER"), (25, 33, "ORG"), (37, 40, "ORG")])]},
    "spacy.jsonl": {"text": SPAN_TEXT, "entities": [[4, 19, "PER"], [25, 33, "ORG"], [37, 40, "ORG"], [50, 55, "LOC"]]},
    "prodigy.jsonl": {"text": SPAN_TEXT, "tokens": [{"text": "Dr.", "start": 0, "end": 3, "id": 0}], "spans": [
        {"start": a, "end": b, "label": k, "token_start": 0} for a, b, k in
        [(4, 19, "PER"), (25, 33, "ORG"), (37, 40, "ORG"), (50, 55, "LOC")]], "answer": "accept"},
    "doc-to-json.jsonl": {"text": SPAN_TEXT, "ents": [{"start": a, "end": b, "label": k} for a, b, k in
                                                      [(4, 19, "PER"), (25, 33, "ORG"), (37, 40, "ORG"), (50, 55, "LOC")]]},
    # Label Studio's JSON-MIN (and CSV) export: the spans under the labels' name, each with a list of one label
    "label-studio-min.json": {"id": 7, "text": SPAN_TEXT, "label": [
        {"start": a, "end": b, "text": SPAN_TEXT[a:b], "labels": [k]} for a, b, k in
        [(4, 19, "PER"), (25, 33, "ORG"), (37, 40, "ORG"), (50, 55, "LOC")]]},
}


@pytest.mark.parametrize("name", list(SPAN_LAYOUTS))
def test_entity_spans_become_words_tagged_bio(tmp_path, name):
    """doccano / spaCy / Prodigy character spans (was "has 10 words but 4 tags", or no label column): words split at
    spaces and punctuation, a word tagged when it overlaps a span; the model's tag scheme is then the tags' business."""
    layout = SPAN_LAYOUTS[name]
    rows = [layout, {**layout, "text": "nothing to see", **{k: [] for k in ("label", "entities", "spans", "ents")
                                                            if k in layout}}]
    path = _write(tmp_path / name, "".join(json.dumps(r) + "\n" for r in rows))
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == [SPAN_WORDS, "nothing to see"]
    assert data.notes == ("entities given as character spans were read as words (split at spaces and punctuation) "
                          "tagged B-/I- where they overlap an entity",)
    iob2 = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    assert tag_sequences(data, iob2) == [SPAN_TAGS, ["O", "O", "O"]]
    # IOB1 and plain IO models: B- tags of types they know are kept as written, and chunk into the same entities
    from inferforge.metrics import entities

    for scheme in (["O", "I-PER", "I-ORG", "I-LOC"], ["O", "PER", "ORG", "LOC"]):
        assert list(map(entities, tag_sequences(data, scheme))) == [entities(SPAN_TAGS), []]


def test_entity_spans_in_a_csv_cell_and_a_dataset_folder_note(tmp_path):
    cell = json.dumps([[4, 19, "PER"], [25, 33, "ORG"], [37, 40, "ORG"], [50, 55, "LOC"]]).replace('"', '""')
    path = _write(tmp_path / "test.csv", f'text,label\n"{SPAN_TEXT}","{cell}"\n')
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True, split="test")
    assert tag_sequences(data, ["O", "B-PER", "I-PER", "B-ORG", "B-LOC"]) == [SPAN_TAGS]
    assert len(data.notes) == 2 and data.notes[1].startswith("entities given as character spans")


SPAN_ERRORS = [
    ([[0, 80, "PER"]], "Entity span 0-80 \\('PER'\\) at line 1 of .* does not fit its text of 62 characters; give "
                       "character offsets with 0 <= start < end <= 62 \\(end exclusive\\)."),
    ([[5, 5, "PER"]], "Entity span 5-5 .* does not fit its text"),
    ([[-1, 3, "PER"]], "Entity span -1-3 .* does not fit its text"),
    ([[4, 19, "PER"], [13, 23, "LOC"]], "Entity spans 4-19 \\('PER'\\) and 13-23 \\('LOC'\\) at line 1 of .* overlap; "
                                         "give each character to one entity at most."),
    ([[4, 60, "PER"], [10, 12, "LOC"]], "Entity spans 4-60 \\('PER'\\) and 10-12 \\('LOC'\\) at line 1 .* overlap"),
    ([[4, 10, "PER"], [10, 12, "PER"]], "Entity spans 4-10 \\('PER'\\) and 10-12 \\('PER'\\) at line 1 .* share the word "
                                      "'Luc', which has one tag; make the spans cover whole words."),
    ([[3, 4, "PER"]], "Entity span 3-4 \\('PER'\\) at line 1 .* covers no word \\(\" \"\\)"),
    ([[4, 19]], "Entity \\[4, 19\\] at line 1 .* is not a span \\[start, end, label\\]"),
    ([{"start": 4, "label": "PER"}], "Entity {\"start\": 4, \"label\": \"PER\"} at line 1 .* is not a span"),
]


@pytest.mark.parametrize("spans,message", SPAN_ERRORS)
def test_bad_entity_spans_are_one_sentence_naming_the_line(tmp_path, spans, message):
    path = _write(tmp_path / "bad.jsonl", json.dumps({"text": SPAN_TEXT, "label": spans}) + "\n")
    with pytest.raises(UserError, match=message) as error:
        read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert "\n" not in str(error.value) and str(error.value).endswith(".")


SQUAD_ROWS = [
    {"id": "q1", "title": "Paris", "context": "Paris is the capital of France.", "question": "What is the capital?",
     "answers": {"text": ["Paris", "Paris"], "answer_start": [0, 0]}},
    {"id": "q2", "title": "Paris", "context": "Paris is the capital of France.", "question": "Of what?",
     "answers": {"text": ["France", "of France"], "answer_start": [24, 21]}},
]


def test_squad_jsonl_from_datasets_and_v2_unanswerable(tmp_path):
    rows = SQUAD_ROWS + [{**SQUAD_ROWS[0], "id": "q3", "answers": {"text": [], "answer_start": []}},
                         {**SQUAD_ROWS[0], "id": "q4", "answers": {"text": [""], "answer_start": [-1]}}]
    path = _write(tmp_path / "squad.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = read_labelled_data(path, _task_columns("question-answering"))
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("question", "context", "answers")
    assert data.pairs[1] == "Paris is the capital of France."
    assert answer_texts(data) == [["Paris", "Paris"], ["France", "of France"], [""], [""]]  # q4: was "No answer text"
    # SQuAD 2.0's own layout flattened: a list of {"text", "answer_start"} objects, [] when unanswerable
    flat = [{**r, "answers": [{"text": t, "answer_start": 0} for t in r["answers"]["text"]]} for r in rows]
    flat_path = _write(tmp_path / "squad-flat.jsonl", "".join(json.dumps(r) + "\n" for r in flat))
    assert answer_texts(read_labelled_data(flat_path, _task_columns("question-answering"))) == answer_texts(data)
    # a CSV written by to_csv holds pandas' repr of the answers dict
    csv_path = _write(tmp_path / "squad.csv", "question,context,answers\nOf what?,Paris is the capital of France.,"
                      "\"{'text': array(['France', 'of France'], dtype=object), 'answer_start': array([24, 21], dtype=int32)}\"\n")
    assert answer_texts(read_labelled_data(csv_path, _task_columns("question-answering"))) == [["France", "of France"]]


def test_original_squad_json(tmp_path):
    squad = {"version": "1.1", "data": [{"title": "Paris", "paragraphs": [
        {"context": SQUAD_ROWS[0]["context"], "qas": [
            {"id": r["id"], "question": r["question"],
             "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]}
            for r in SQUAD_ROWS]}]}]}
    path = _write(tmp_path / "dev-v1.1.json", json.dumps(squad))
    data = read_labelled_data(path, _task_columns("question-answering"))
    assert data.texts == [r["question"] for r in SQUAD_ROWS] and data.file_format == "SQuAD JSON"
    assert answer_texts(data) == [["Paris", "Paris"], ["France", "of France"]]
    squad["data"][0]["paragraphs"][0]["qas"][1]["question"] = " "
    _write(path, json.dumps(squad))
    data = read_labelled_data(path, _task_columns("question-answering"))  # a blank question: its row left out, said
    assert data.texts == [SQUAD_ROWS[0]["question"]] and answer_texts(data) == [["Paris", "Paris"]]
    assert data.notes == (f"1 row has no text (a blank 'question' or 'context' cell, the first at question 'q2' "
                          f"(article 1, paragraph 1) of {path}), so it is left out: 1 of the 2 rows of {path} are read",)
    with pytest.raises(UserError, match="Article 1 of .* has no 'paragraphs'"):
        read_labelled_data(_write(tmp_path / "bad.json", '{"data": [{"title": "x"}]}'), _task_columns("question-answering"))


@pytest.mark.parametrize("header", ["sentence1,sentence2,score", "sentence1,sentence2,similarity_score",
                                    "sentence_A,sentence_B,relatedness_score", "sentence1,sentence2,label,idx"])
def test_similarity_files(tmp_path, header):
    # STS-B (GLUE, sentence-transformers/stsb, stsb_multi_mt) and SICK
    rows = "".join(f"first {i},second {i},{s}" + (f",{i}" if header.endswith("idx") else "") + "\n"
                   for i, s in enumerate([4.5, 0.25, 3]))
    data = read_labelled_data(_write(tmp_path / "sts.csv", header + "\n" + rows), _task_columns("feature-extraction"))
    assert data.pairs == ["second 0", "second 1", "second 2"]
    assert similarity_scores(data).tolist() == [4.5, 0.25, 3.0]


def test_single_texts_for_similarity_name_the_missing_pair(tmp_path):
    path = _write(tmp_path / "one.csv", "sentence,score\na,1\n")
    with pytest.raises(UserError, match="no column for the second text next to 'sentence' .*looked for text_pair, "
                                        "sentence2.*--pair-column"):
        read_labelled_data(path, _task_columns("feature-extraction"))


def test_json_array_with_line_numbers(tmp_path):
    path = _write(tmp_path / "rows.json", '[\n  {"sentence": "good", "label": "Positive"},\n'
                                          '  {"sentence": "bad", "label": "nope"}\n]\n')
    data = read_labelled_data(path, _task_columns("text-classification"))
    assert data.texts == ["good", "bad"] and data.lines == [2, 3] and data.file_format == "JSON array"
    with pytest.raises(UserError, match="Unknown label 'nope' at line 3 of .*rows.json"):
        class_ids(data, ["negative", "positive"])


def test_labels_by_name_in_any_case_or_by_id(tmp_path):
    data = read_labelled_data(_write(tmp_path / "r.jsonl", "".join(
        json.dumps({"text": t, "label": v}) + "\n" for t, v in
        [("a", "POSITIVE"), ("b", "Negative"), ("c", 1), ("d", "0"), ("e", 1.0), ("f", " 1 ")])))
    assert class_ids(data, ["negative", "positive"]).tolist() == [1, 0, 1, 0, 1, 1]
    # a model whose config.json names its classes generically, with integer labels (as datasets writes them)
    assert class_ids(data.subset([2, 3, 4]), ["LABEL_0", "LABEL_1"]).tolist() == [1, 0, 1]
    with pytest.raises(UserError, match="Unknown label 'POSITIVE' .*LABEL_0, LABEL_1 .or their ids 0-1. .*generically, "
                                        "so give the class ids"):
        class_ids(data, ["LABEL_0", "LABEL_1"])
    unlabelled = read_labelled_data(_write(tmp_path / "test.csv", "sentence,label\na,-1\n"))
    with pytest.raises(UserError, match="Unknown label '-1' at line 2 .*unlabelled row"):
        class_ids(unlabelled, ["negative", "positive"])
    with pytest.raises(UserError, match="Unknown label '1.5'"):
        class_ids(read_labelled_data(_write(tmp_path / "f.csv", "text,label\na,1.5\n")), ["negative", "positive"])


def test_calibration_texts_find_the_usual_columns(tmp_path):
    assert read_calibration_texts(_write(tmp_path / "c.csv", "idx,sentence,label\n0,hello,1\n")) == (["hello"], None)
    squad = _write(tmp_path / "s.jsonl", "".join(json.dumps(r) + "\n" for r in SQUAD_ROWS))
    texts, pairs = read_calibration_texts(squad)
    assert texts == [r["question"] for r in SQUAD_ROWS] and pairs == [r["context"] for r in SQUAD_ROWS]
    conll = _write(tmp_path / "c.conll", "EU B-ORG\nrejects O\n")
    assert read_calibration_texts(conll) == (["EU rejects"], None)
    with pytest.raises(UserError, match="no column 'body'"):
        read_calibration_texts(squad, text_column="body")


# ---- Parquet, Arrow and `datasets` folders, written here with pyarrow the way `datasets` writes them ----------
# datasets' ArrowWriter puts the features into the schema metadata: b"huggingface" -> {"info": {"features": ...}}.

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

NLI_NAMES = ["entailment", "neutral", "contradiction"]  # glue/mnli's ClassLabel order
NER_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # conll2003's


def _value(dtype="string"):
    return {"dtype": dtype, "_type": "Value"}


def _class_label(names, legacy=False):
    return ({"num_classes": len(names), "names": names, "id": None, "_type": "ClassLabel"} if legacy
            else {"names": names, "_type": "ClassLabel"})


def _hf_table(columns: dict, features: dict | None):
    table = pa.table(columns)
    if features is not None:
        metadata = {"info": {"features": features}, "fingerprint": "0123456789abcdef"}
        table = table.replace_schema_metadata({b"huggingface": json.dumps(metadata).encode()})
    return table


def _write_arrow(path, table):
    """An Arrow IPC stream, as datasets' save_to_disk writes data-00000-of-00001.arrow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def _save_to_disk(folder, table, split, features=None):
    """What Dataset.save_to_disk writes: the .arrow file, dataset_info.json (features) and state.json."""
    _write_arrow(folder / "data-00000-of-00001.arrow", table)
    (folder / "dataset_info.json").write_text(json.dumps({"citation": "", "description": "", "features": features or {}}))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                   "_fingerprint": "abc", "_format_columns": None, "_format_kwargs": {},
                                                   "_format_type": None, "_output_all_columns": False, "_split": split}))
    return folder


MNLI_FEATURES = {"premise": _value(), "hypothesis": _value(), "label": _class_label(NLI_NAMES), "idx": _value("int32")}


def _mnli(labels):
    n = len(labels)
    return {"premise": [f"premise {i}" for i in range(n)], "hypothesis": [f"hypothesis {i}" for i in range(n)],
            "label": labels, "idx": list(range(n))}


def test_parquet_class_label_ids_go_through_names_to_the_models_ids(tmp_path):
    path = tmp_path / "mnli.parquet"
    pq.write_table(_hf_table(_mnli([0, 1, 2, 2, 0]), MNLI_FEATURES), path)
    data = read_labelled_data(path, _task_columns("text-classification"))
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("premise", "hypothesis", "label")
    assert data.file_format == "Parquet" and data.class_names == tuple(NLI_NAMES) and data.where(3) == f"row index 3 of {path}"
    # an MNLI model orders its classes differently from the dataset (roberta-large-mnli: contradiction, neutral, entailment)
    model = ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]
    resolver = LabelResolver(data, model)
    assert class_ids(data, model, resolver).tolist() == [2, 1, 0, 0, 2]
    mapping = resolver.mapping()
    assert mapping["how"] == ["class-names"]
    assert [(p["dataset_id"], p["dataset_name"], p["model_id"]) for p in mapping["pairs"]] == [
        (0, "entailment", 2), (1, "neutral", 1), (2, "contradiction", 0)]
    assert "0 entailment -> 2 ENTAILMENT" in mapping["note"] and "same ids" not in mapping["note"]
    # the same order: same ids, said so
    same = LabelResolver(data, ["entailment", "neutral", "contradiction"])
    assert class_ids(data, same.model, same).tolist() == [0, 1, 2, 2, 0] and same.mapping()["note"].endswith("(same ids)")
    # names that differ in case and punctuation, or are a unique prefix (imdb's neg/pos), still match
    rte = _hf_table({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, 0]},
                    {"label": _class_label(["entailment", "not_entailment"], legacy=True)})
    pq.write_table(rte, tmp_path / "rte.parquet")
    assert class_ids(read_labelled_data(tmp_path / "rte.parquet"), ["NOT ENTAILMENT", "ENTAILMENT"]).tolist() == [0, 1]
    pq.write_table(_hf_table({"text": ["a", "b", "c"], "label": [1, 0, 1]}, {"label": _class_label(["neg", "pos"])}),
                   tmp_path / "imdb.parquet")
    assert class_ids(read_labelled_data(tmp_path / "imdb.parquet"), ["POSITIVE", "NEGATIVE"]).tolist() == [0, 1, 0]


def test_ids_without_names_are_the_models_ids_and_said_once(tmp_path):
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"sentence": ["a", "b", "c"], "label": [1, 0, 1]}), path)  # pandas' to_parquet: no features
    data = read_labelled_data(path)
    assert data.class_names is None
    resolver = LabelResolver(data, ["NEGATIVE", "POSITIVE"])
    assert class_ids(data, None, resolver).tolist() == [1, 0, 1]
    note = resolver.mapping()["note"]
    assert note == (f"labels are integer ids and {path} gives no class names, so they are taken as the model's ids "
                    f"(0 = NEGATIVE, 1 = POSITIVE); if the data numbers its classes differently, write the class names")
    generic = LabelResolver(data, ["LABEL_0", "LABEL_1"])  # writing class names would not help: said otherwise
    class_ids(data, None, generic)
    assert generic.mapping()["note"].endswith("(0 = LABEL_0, 1 = LABEL_1); the model names its classes generically, so "
                                              "make sure the data numbers them as the model was trained to")
    # ClassLabel(num_classes=2) names its ids "0", "1": no names either
    pq.write_table(_hf_table({"text": ["a"], "label": [1]}, {"label": _class_label(["0", "1"])}), tmp_path / "n.parquet")
    assert LabelResolver(read_labelled_data(tmp_path / "n.parquet"), ["A", "B"]).through_names is False
    # names given as names: nothing to say
    names = read_labelled_data(_write(tmp_path / "names.csv", "text,label\na,positive\n"))
    resolver = LabelResolver(names, ["NEGATIVE", "POSITIVE"])
    assert class_ids(names, None, resolver).tolist() == [1] and resolver.mapping()["note"] is None


def test_a_model_with_generic_labels_takes_the_datasets_ids(tmp_path):
    path = tmp_path / "mnli.parquet"
    pq.write_table(_hf_table(_mnli([2, 0]), MNLI_FEATURES), path)
    data = read_labelled_data(path)
    resolver = LabelResolver(data, ["LABEL_0", "LABEL_1", "LABEL_2"])
    assert class_ids(data, None, resolver).tolist() == [2, 0]
    assert "generically" in resolver.mapping()["note"] and "2 contradiction = LABEL_2" in resolver.mapping()["note"]


@pytest.mark.parametrize("layout", ["List", "Sequence", "shorthand"])
def test_ner_tags_as_a_sequence_of_class_label_ids(tmp_path, layout):
    # conll2003 numbers its tags O, B-PER, I-PER, B-ORG...; dslim/bert-base-NER's id2label is O, B-MISC, I-MISC, B-PER...
    inner = _class_label(NER_NAMES)
    feature = {"List": {"feature": inner, "_type": "List"},
               "Sequence": {"feature": inner, "length": -1, "id": None, "_type": "Sequence"},
               "shorthand": [inner]}[layout]
    tokens = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    tags = [[3, 0, 7, 0], [1, 2]]
    path = tmp_path / "conll.parquet"
    pq.write_table(_hf_table({"id": ["0", "1"], "tokens": tokens, "pos_tags": [[22, 42, 16, 21], [22, 22]],
                              "ner_tags": tags}, {"tokens": {"feature": _value(), "_type": "List"}, "ner_tags": feature}),
                   path)
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == ["EU rejects German call", "Peter Blackburn"] and data.columns.label == "ner_tags"
    model = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    resolver = LabelResolver(data, model)
    assert tag_sequences(data, model, resolver) == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]
    pairs = {p["dataset_name"]: p["model_id"] for p in resolver.mapping()["pairs"]}
    assert pairs == {"O": 0, "B-PER": 3, "I-PER": 4, "B-ORG": 5, "I-ORG": 6, "B-LOC": 7, "I-LOC": 8, "B-MISC": 1,
                     "I-MISC": 2}


def _dataset_dict(folder, splits: dict, features=MNLI_FEATURES, metadata_in_arrow=True):
    """What DatasetDict.save_to_disk writes: dataset_dict.json and one save_to_disk folder per split."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    for name, labels in splits.items():
        table = _hf_table(_mnli(labels), features if metadata_in_arrow else None)
        _save_to_disk(folder / name, table, name, features)
    return folder


def test_save_to_disk_dataset_dict_picks_the_split(tmp_path):
    folder = _dataset_dict(tmp_path / "mnli", {"train": [0, 0, 0, 0], "validation": [1, 2], "test": [2, 1, 0]})
    columns = _task_columns("text-classification")
    data = read_labelled_data(folder, columns)
    assert data.split == "test" and data.labels == [2, 1, 0] and data.file_format == "Arrow"
    assert data.notes == (f"split 'test' of {folder} is used (the first of test, validation, dev, valid it has; "
                          f"choose another with --eval-split)",)
    assert data.where(1) == f"row index 1 of {folder} (split 'test')"
    assert "split 'test'" in data.describe() and data.record()["split"] == "test"
    validation = read_labelled_data(folder, columns, split="validation")
    assert validation.split == "validation" and validation.labels == [1, 2] and validation.notes == ()
    assert class_ids(validation, ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]).tolist() == [1, 0]
    # one split saved alone (Dataset.save_to_disk), its features only in dataset_info.json
    alone = _save_to_disk(tmp_path / "alone", pa.table(_mnli([0, 2])), "validation", MNLI_FEATURES)
    data = read_labelled_data(alone, columns)
    assert data.split == "validation" and data.class_names == tuple(NLI_NAMES)
    assert class_ids(data, ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]).tolist() == [2, 0]
    with pytest.raises(UserError, match="is a saved Dataset of split 'validation' only, not 'test'"):
        read_labelled_data(alone, columns, split="test")


def test_glue_test_split_without_labels_falls_back_to_validation(tmp_path):
    folder = _dataset_dict(tmp_path / "glue", {"train": [0], "validation": [1, 0], "test": [-1, -1, -1]})
    data = read_labelled_data(folder, _task_columns("text-classification"))
    assert data.split == "validation" and data.labels == [1, 0]
    assert data.notes == (f"split 'test' of {folder} has no labels (every label is -1, as in GLUE's test splits), so "
                          f"'validation' is used",)
    test = read_labelled_data(folder, _task_columns("text-classification"), split="test")  # asked for: kept, fails on labels
    with pytest.raises(UserError, match="Label id -1 at row index 0 of .*split 'test'. marks an unlabelled row .*--eval-split validation"):
        class_ids(test, ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"])


def test_hub_folder_of_parquet_shards_named_by_split(tmp_path):
    folder = tmp_path / "snapshot"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\ndataset_info: ...\n---\n")
    features = {"text": _value(), "label": _class_label(["neg", "pos"])}
    pq.write_table(_hf_table({"text": ["t0"], "label": [0]}, features), folder / "data" / "train-00000-of-00001.parquet")
    pq.write_table(_hf_table({"text": ["a", "b"], "label": [0, 1]}, features), folder / "data" / "test-00000-of-00002.parquet")
    pq.write_table(_hf_table({"text": ["c"], "label": [1]}, features), folder / "data" / "test-00001-of-00002.parquet")
    data = read_labelled_data(folder)
    assert data.split == "test" and data.texts == ["a", "b", "c"] and data.lines == [0, 1, 2]
    assert class_ids(data, ["NEGATIVE", "POSITIVE"]).tolist() == [0, 1, 1]
    assert read_labelled_data(folder, split="train").texts == ["t0"]
    # the parquet-converted layout: config/split/0000.parquet
    converted = tmp_path / "converted" / "default"
    (converted / "validation").mkdir(parents=True)
    pq.write_table(_hf_table({"text": ["v"], "label": [1]}, features), converted / "validation" / "0000.parquet")
    assert read_labelled_data(converted).split == "validation"


SPLIT_ERRORS = [
    ("missing split", {"split": "dev_matched"}, "has no split 'dev_matched' .splits: train, validation, test.; name one "
                                                "of them with --eval-split"),
    ("no default split", {}, "has no 'test', 'validation', 'dev' or 'valid' split .splits: train, validation_matched.; "
                             "name the one to evaluate on with --eval-split"),
    ("bad slice", {"split": "test[:x]"}, "--eval-split 'test.:x.' is not a split name or a slice such as test.:200."),
    ("empty folder", {}, "holds no labelled data"),
]


@pytest.mark.parametrize("case,kwargs,message", SPLIT_ERRORS, ids=[c[0] for c in SPLIT_ERRORS])
def test_bad_dataset_folders_are_one_user_error(tmp_path, case, kwargs, message):
    folder = tmp_path / "ds"
    if case in ("missing split", "bad slice"):
        _dataset_dict(folder, {"train": [0], "validation": [1], "test": [2]})
    elif case == "no default split":
        _dataset_dict(folder, {"train": [0], "validation_matched": [1]})
    else:
        folder.mkdir()
        (folder / "notes.txt").write_text("nothing\n")
    with pytest.raises(UserError, match=message):
        read_labelled_data(folder, **kwargs)


def test_bad_labels_in_parquet(tmp_path):
    path = tmp_path / "mnli.parquet"
    pq.write_table(_hf_table(_mnli([0, 5]), MNLI_FEATURES), path)
    data = read_labelled_data(path)
    with pytest.raises(UserError, match=r"Label id 5 at row index 1 of .*mnli.parquet is outside the 3 classes the "
                                        r"dataset's features name for column 'label' \(entailment, neutral, contradiction\)"):
        class_ids(data, ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"])
    with pytest.raises(UserError, match=r"Class 'neutral' \(id 1 of column 'label'\) at row index 0 .*is not one of the "
                                        r"model's labels \(ENTAILMENT, CONTRADICTION\); write the labels as the model's names"):
        class_ids(read_labelled_data(_hf_path(tmp_path, [1])), ["ENTAILMENT", "CONTRADICTION"])
    with pytest.raises(UserError, match=r"Unknown label '2' at row index 0 .*plain.parquet.* ids 0-1"):
        pq.write_table(pa.table({"text": ["a"], "label": [2]}), tmp_path / "plain.parquet")
        class_ids(read_labelled_data(tmp_path / "plain.parquet"), ["NEGATIVE", "POSITIVE"])
    pq.write_table(pa.table({"text": ["a"], "stars": [2]}), tmp_path / "nolabel.parquet")
    with pytest.raises(UserError, match=r"nolabel.parquet has no label column \(columns found: text, stars; .*--label-column"):
        read_labelled_data(tmp_path / "nolabel.parquet")
    pq.write_table(pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    with pytest.raises(UserError, match="e.parquet has no data rows"):
        read_labelled_data(tmp_path / "e.parquet")
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(UserError, match="cut.parquet is not a readable Parquet file"):
        read_labelled_data(truncated)


def _hf_path(tmp_path, labels):
    path = tmp_path / "one.parquet"
    pq.write_table(_hf_table(_mnli(labels), MNLI_FEATURES), path)
    return path


def test_squad_answers_nested_in_parquet_and_arrow(tmp_path):
    answers = [{"text": ["Paris", "Paris"], "answer_start": [0, 0]}, {"text": [], "answer_start": []}]
    table = _hf_table({"id": ["q1", "q2"], "context": ["Paris is the capital of France."] * 2,
                       "question": ["What is the capital?", "Who?"], "answers": answers},
                      {"answers": {"feature": {"text": _value(), "answer_start": _value("int32")}, "_type": "Sequence"}})
    pq.write_table(table, tmp_path / "squad.parquet")
    _write_arrow(tmp_path / "squad.arrow", table)
    for path in (tmp_path / "squad.parquet", tmp_path / "squad.arrow"):
        data = read_labelled_data(path, _task_columns("question-answering"))
        assert (data.columns.text, data.columns.pair, data.columns.label) == ("question", "context", "answers")
        assert answer_texts(data) == [["Paris", "Paris"], [""]]
    # SQuAD's own layout in a column: a list of {"text", "answer_start"} objects
    rows = [{"question": "q", "context": "c", "answers": [{"text": "x", "answer_start": 0}, {"text": "y", "answer_start": 2}]}]
    jsonl = _write(tmp_path / "a.jsonl", json.dumps(rows[0]) + "\n")
    assert answer_texts(read_labelled_data(jsonl, _task_columns("question-answering"))) == [["x", "y"]]


def test_column_oriented_json(tmp_path):
    columnar = _write(tmp_path / "cols.json", json.dumps({"text": ["good", "bad"], "label": [1, 0]}))
    data = read_labelled_data(columnar)
    assert data.texts == ["good", "bad"] and data.labels == [1, 0] and data.file_format == "JSON columns"
    assert data.where(1) == f"row index 1 of {columnar}"
    # pandas DataFrame.to_json(): orient "columns" (its default), "split", "index" and "table"
    frames = {"columns": {"text": {"0": "good", "1": "bad"}, "label": {"0": "positive", "1": "negative"}},
              "split": {"columns": ["text", "label"], "index": [0, 1], "data": [["good", "positive"], ["bad", "negative"]]},
              "index": {"0": {"text": "good", "label": "positive"}, "1": {"text": "bad", "label": "negative"}},
              "table": {"schema": {"fields": []}, "data": [{"index": 0, "text": "good", "label": "positive"},
                                                           {"index": 1, "text": "bad", "label": "negative"}]}}
    for orient, content in frames.items():
        data = read_labelled_data(_write(tmp_path / f"{orient}.json", json.dumps(content)))
        assert data.texts == ["good", "bad"], orient
        assert class_ids(data, ["negative", "positive"]).tolist() == [1, 0], orient


def test_conllu_file(tmp_path):
    path = _write(tmp_path / "en_ewt-ud-test.conllu",
                  "# sent_id = 1\n# text = I can't go.\n1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_\n"
                  "2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\n2\tca\tcan\tAUX\tMD\t_\t3\taux\t_\t_\n"
                  "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_\n4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n"
                  "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_\n\n# sent_id = 2\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n")
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == ["I ca n't go .", "Hi"] and data.columns.label == "upos" and data.lines == [3, 11]
    upos = ["NOUN", "PRON", "AUX", "PART", "VERB", "PUNCT", "INTJ"]
    assert tag_sequences(data, upos) == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["INTJ"]]
    assert read_labelled_data(path, _task_columns("token-classification", label="xpos"), text_is_list=True).labels[1] == ["UH"]


def test_calibration_texts_from_parquet(tmp_path):
    pq.write_table(_hf_table(_mnli([0, 1]), MNLI_FEATURES), tmp_path / "c.parquet")
    assert read_calibration_texts(tmp_path / "c.parquet") == (["premise 0", "premise 1"], ["hypothesis 0", "hypothesis 1"])


def test_split_slices_and_a_test_file_without_labels(tmp_path):
    folder = _dataset_dict(tmp_path / "ds", {"validation": [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], "test": [1, 1]})
    first = read_labelled_data(folder, split="validation[:3]")
    assert first.labels == [0, 1, 2] and first.split == "validation"
    assert first.notes == (f"rows [:3] of {folder} (split 'validation') are used: 3 of 10",)
    assert read_labelled_data(folder, split="validation[-20%:]").labels == [2, 0]
    assert read_labelled_data(folder, split="test").labels == [1, 1]
    with pytest.raises(UserError, match=r"keeps no row of the 2"):
        read_labelled_data(folder, split="test[5:]")
    # GLUE's original files: test.tsv has no label column, dev.tsv has; the default passes over test
    repo = tmp_path / "SST-2"
    repo.mkdir()
    _write(repo / "train.tsv", "sentence\tlabel\ngood\t1\n")
    _write(repo / "dev.tsv", "sentence\tlabel\nfine\t1\nbad\t0\n")
    _write(repo / "test.tsv", "index\tsentence\n0\tunknown\n")
    data = read_labelled_data(repo, _task_columns("text-classification"))
    assert data.split == "dev" and data.texts == ["fine", "bad"] and data.file_format == "TSV"
    assert data.notes == (f"split 'test' of {repo} has no label column, so 'dev' is used",)
    assert data.where(1) == f"line 3 of {repo / 'dev.tsv'}"
    # a single file has no splits, but a slice still applies to it: the notes say both, in order
    dev = read_labelled_data(repo / "dev.tsv", _task_columns("text-classification"), split="test[:1]")
    assert dev.texts == ["fine"]
    assert dev.notes == (f"--eval-split 'test' does not apply to a single file: all of {repo / 'dev.tsv'} is read, "
                         f"then sliced", f"rows [:1] of {repo / 'dev.tsv'} are used: 1 of 2")


# ---- Texts without labels: --calibration-data and --validation-texts read every source --eval-data reads ----

TEXT_OPTIONS = ("--calibration-data", "--validation-texts")


@pytest.mark.parametrize("option", TEXT_OPTIONS)
def test_texts_from_every_source_for_both_options(tmp_path, option):
    from inferforge.labelled_data import read_texts
    from inferforge.tasks import get_task

    classify, qa = get_task("text-classification"), get_task("question-answering")
    txt = _write(tmp_path / "t.txt", "\ufefffirst text\n\n  second text  \n")
    assert (read_texts(txt, classify, option=option).texts, read_texts(txt, classify, option=option).pairs) == \
        (["first text", "second text"], None)
    pairs = _write(tmp_path / "qa.txt", "What is the capital?\tParis is the capital.\nOf what?\tOf France.\n")
    got = read_texts(pairs, qa, option=option)
    assert got.texts == ["What is the capital?", "Of what?"] and got.pairs == ["Paris is the capital.", "Of France."]
    headerless = _write(tmp_path / "qa.tsv", pairs.read_text())  # the layout of the built-in validation_qa.tsv
    assert read_texts(headerless, qa, option=option).pairs == got.pairs
    squad = _write(tmp_path / "s.jsonl", "".join(json.dumps(r) + "\n" for r in SQUAD_ROWS))
    got = read_texts(squad, qa, option=option)
    assert (got.texts, got.pairs, got.file_format) == ([r["question"] for r in SQUAD_ROWS],
                                                       [r["context"] for r in SQUAD_ROWS], "JSON Lines")
    assert read_texts(_write(tmp_path / "c.tsv", "idx\tsentence\tlabel\n0\thello\t1\n"), classify, option=option).texts == ["hello"]
    pq.write_table(_hf_table(_mnli([0, 1]), MNLI_FEATURES), tmp_path / "m.parquet")
    got = read_texts(tmp_path / "m.parquet", classify, option=option)
    assert (got.texts, got.pairs, got.file_format) == (["premise 0", "premise 1"], ["hypothesis 0", "hypothesis 1"], "Parquet")
    # token classification takes single texts: a second column is not a pair for it
    assert read_texts(tmp_path / "m.parquet", get_task("token-classification"), "premise", option=option).pairs is None


def test_texts_from_a_dataset_folder_take_the_split_each_option_wants(tmp_path):
    """A DatasetDict folder: calibration takes train (never the split the variants are judged on), verification
    takes test first, as --eval-data; a split's own folder picks another."""
    from inferforge.labelled_data import read_texts
    from inferforge.tasks import get_task

    folder = _dataset_dict(tmp_path / "mnli", {"train": [0, 1, 2], "test": [-1, -1]})
    task = get_task("text-classification")
    calibration = read_texts(folder, task, option="--calibration-data")
    assert (calibration.split, len(calibration.texts), calibration.pairs[0]) == ("train", 3, "hypothesis 0")
    assert calibration.record() == {"source": f"{folder} (split 'train')", "format": "Arrow", "split": "train", "count": 3}
    validation = read_texts(folder, task, option="--validation-texts")  # unlabelled test rows are fine: no labels needed
    assert (validation.split, len(validation.texts)) == ("test", 2)
    assert read_texts(folder / "test", task, option="--calibration-data").split == "test"
    other = _dataset_dict(tmp_path / "odd", {"extra": [0], "more": [1]})
    with pytest.raises(UserError, match=r"has no 'train', 'test', 'validation', 'dev' or 'valid' split \(splits: extra, "
                                        r"more\); point --calibration-data at the folder or file of the split to use\."):
        read_texts(other, task, option="--calibration-data")


@pytest.mark.parametrize("content, task_name, kwargs, message", [
    (None, "text-classification", {}, "--calibration-data file '{path}' does not exist."),
    (b"\xff\xfe bad!", "text-classification", {}, "--calibration-data file '{path}' is not readable UTF-16-LE text "
                                                 "(truncated data); save it as UTF-8."),
    (b"\x00\x01 bad \xff", "text-classification", {}, "--calibration-data file '{path}': {path} is not a text file: it "
                                                     "holds binary bytes (the first on line 1)"),
    ("\n \n", "text-classification", {}, "--calibration-data file '{path}' has no text; write one text per line"),
    ("What?\tThis.\nno tab here\n", "question-answering", {},
     "--calibration-data file '{path}': question-answering needs text pairs separated by a TAB; line 2 has none."),
    ("question,label\nWhat?,1\n", "question-answering", {"suffix": ".csv"},
     "{path} has no second-text column for question-answering (columns found: question, label); name it with --pair-column."),
    ("text,label\nhi,1\n", "text-classification", {"suffix": ".csv", "text_column": "body"},
     "{path} has no column 'body' (columns found: text, label); name the right one with --text-column."),
    ("text,label\n", "text-classification", {"suffix": ".csv"}, "{path} has no rows; --calibration-data needs at least one text."),
])
def test_bad_texts_are_one_sentence(tmp_path, content, task_name, kwargs, message):
    from inferforge.labelled_data import read_texts
    from inferforge.tasks import get_task

    path = tmp_path / ("c" + kwargs.pop("suffix", ".txt"))
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as error:
        read_texts(path, get_task(task_name), option="--calibration-data", **kwargs)
    assert str(error.value).startswith(message.format(path=path))


# ----- layouts of public datasets that the tests above did not cover (an outside user's audit) -----


def test_snli_rows_without_a_gold_label_are_left_out_and_said(tmp_path):
    from inferforge.labelled_data import without_unlabelled_rows

    model = ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]
    # SNLI's own jsonl: gold_label '-' where the annotators had no majority; datasets' snli: label -1 for those rows
    snli = _write(tmp_path / "snli_1.0_dev.jsonl", "".join(json.dumps(
        {"gold_label": g, "sentence1": f"a {i}", "sentence2": f"b {i}", "annotator_labels": [g]}) + "\n"
        for i, g in enumerate(["neutral", "-", "contradiction", "-", "entailment"])))
    data = read_labelled_data(snli, _task_columns("text-classification"))
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("sentence1", "sentence2", "gold_label")
    kept, note = without_unlabelled_rows(data, model)
    assert kept.texts == ["a 0", "a 2", "a 4"] and class_ids(kept, model).tolist() == [1, 2, 0]
    assert note == (f"rows without a gold label ('-', as SNLI marks pairs without a majority label) are left out: 2 of "
                    f"the 5 rows of {snli} (the first at line 2 of {snli}); 3 are scored")
    hf = read_labelled_data(_write(tmp_path / "snli.csv", "premise,hypothesis,label\na,b,-1\nc,d,2\ne,f,0\n"))
    kept, note = without_unlabelled_rows(hf, model)
    assert class_ids(kept, model).tolist() == [2, 0] and "'-1'" in note and "1 of the 3 rows" in note
    # a model with a class named -1 (sentiment -1/0/1) keeps those rows; all rows unlabelled: refused by the label check
    assert without_unlabelled_rows(hf, ["-1", "0", "1"]) == (hf, None)
    dashes = read_labelled_data(_write(tmp_path / "dashes.jsonl", '{"text": "a", "label": "-"}\n'))
    assert without_unlabelled_rows(dashes, model) == (dashes, None)
    with pytest.raises(UserError, match="Unknown label '-' at line 1 .*'-' marks a row without a gold label"):
        class_ids(dashes, model)


def test_wikiann_tags_are_chosen_over_its_spans_summary(tmp_path):
    # WikiANN: tokens, ner_tags, langs, and "spans" (["PER: Alice"]), a summary of the tags, not character spans
    path = _write(tmp_path / "wikiann.jsonl", json.dumps(
        {"tokens": ["Alice", "in", "Paris"], "ner_tags": [1, 0, 5], "langs": ["en"] * 3,
         "spans": ["PER: Alice", "LOC: Paris"]}) + "\n")
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert (data.columns.text, data.columns.label) == ("tokens", "ner_tags")
    # entity spans are still found when they are the only labels (doccano, spaCy)
    spans = _write(tmp_path / "spacy.jsonl", json.dumps({"text": "Alice in Paris", "entities": [[0, 5, "PER"]]}) + "\n")
    assert read_labelled_data(spans, _task_columns("token-classification"), text_is_list=True).labels == [
        ["B-PER", "O", "O"]]


def test_true_false_labels(tmp_path):
    # google/boolq's answer, JSON true/false; "true"/"False" as a CSV writes them
    data = read_labelled_data(_write(tmp_path / "boolq.jsonl", "".join(
        json.dumps({"question": f"q{i}", "passage": "p", "answer": v}) + "\n"
        for i, v in enumerate([True, False, "false", "TRUE"]))), _task_columns("text-classification"))
    assert data.columns.label == "answer"
    resolver = LabelResolver(data, ["NEGATIVE", "POSITIVE"])
    assert class_ids(data, None, resolver).tolist() == [1, 0, 0, 1]
    assert resolver.mapping()["how"] == ["booleans"]
    assert resolver.mapping()["note"].startswith("labels true/false are taken as the model's ids 1 = POSITIVE and "
                                                 "0 = NEGATIVE")
    # a model whose labels are True and False, in any order, takes them by name
    assert class_ids(data, ["True", "False"]).tolist() == [0, 1, 1, 0]
    with pytest.raises(UserError, match="Label 'True' at line 1 of .* is true/false, but the model has 3 labels "
                                        r"\(ENTAILMENT, NEUTRAL, CONTRADICTION\), none named so"):
        class_ids(data, ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"])


def test_multi_hot_label_vectors_are_one_value_per_class(tmp_path):
    from inferforge.labelled_data import class_sets, is_multi_label

    model = ["anger", "joy", "sadness", "fear"]
    path = _write(tmp_path / "ml.jsonl", "".join(json.dumps({"text": t, "labels": v}) + "\n" for t, v in
                                                  [("a", [0, 1, 1, 0]), ("b", [0, 0, 0, 0]), ("c", [1.0, 0.0, 0.0, 1.0])]))
    data = read_labelled_data(path)
    resolver = LabelResolver(data, model)
    assert is_multi_label(data)
    assert class_sets(data, model, resolver).astype(int).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    assert resolver.mapping()["how"] == ["indicators"] and "0/1 vectors" in resolver.mapping()["note"]
    # pandas' to_csv writes the vectors as numpy does
    csv_path = _write(tmp_path / "ml.csv", 'text,labels\na,"[0 1 1 0]"\nb,"[0 0 0 0]"\n')
    assert class_sets(read_labelled_data(csv_path), model).astype(int).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]
    # lists of ids are still ids: [0, 1] names classes 0 and 1
    ids = read_labelled_data(_write(tmp_path / "ids.jsonl", '{"text": "a", "labels": [0, 1]}\n{"text": "b", "labels": [2]}\n'))
    assert class_sets(ids, model).astype(int).tolist() == [[1, 1, 0, 0], [0, 0, 1, 0]]
    wrong = read_labelled_data(_write(tmp_path / "w.jsonl", '{"text": "a", "labels": [0, 1, 1, 0, 0]}\n'))
    with pytest.raises(UserError, match=r"Label \[0, 1, 1, 0, 0\] at line 1 of .* is a vector of 5 0/1 values, one per "
                                        r"class, but the model has 4 classes"):
        class_sets(wrong, model)


def test_squad_question_without_answers_is_not_unanswerable(tmp_path):
    squad = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where?", "answers": [], "is_impossible": True},
        {"id": "q2", "question": "What?"}]}]}]}
    path = _write(tmp_path / "dev.json", json.dumps(squad))
    with pytest.raises(UserError, match="Column 'answers' is empty at question 'q2' .article 1, paragraph 1. of "):
        read_labelled_data(path, _task_columns("question-answering"))
    assert read_calibration_texts(path)[0] == ["Where?", "What?"]  # texts alone need no answers


def test_conll_comment_lines_before_a_sentence_are_not_tokens(tmp_path):
    # MultiCoNER: "# id ... domain=en" before each sentence, "_ _" columns; CoNLL-U style comments; the token "#" stays
    path = _write(tmp_path / "en_dev.conll", "# id 1e6b2c6b-aaaa domain=en\nAlice _ _ B-PER\nmet _ _ O\n\n"
                                              "# sent_id = 2\n# text = # Paris\n# _ _ O\nParis _ _ B-LOC\n\n"
                                              "# O\nBob B-PER\n")
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    assert data.texts == ["Alice met", "# Paris", "# Bob"] and data.lines == [2, 7, 10]
    assert data.labels == [["B-PER", "O"], ["O", "B-LOC"], ["O", "B-PER"]]


def test_label_ids_named_by_a_label_text_column(tmp_path):
    # SetFit's layout (SetFit/sst2, SetFit/emotion...): label ids with their names beside them, in label_text
    path = _write(tmp_path / "sst2.jsonl", "".join(json.dumps({"text": t, "label": i, "label_text": n}) + "\n"
                                                    for t, i, n in [("a", 1, "positive"), ("b", 0, "negative"),
                                                                    ("c", 1, "positive")]))
    data = read_labelled_data(path, _task_columns("text-classification"))
    assert data.class_names == ("negative", "positive")
    assert data.notes == ("the class names of the label ids are read from column 'label_text'",)
    model = ["POSITIVE", "NEGATIVE"]  # another order than the dataset's ids
    resolver = LabelResolver(data, model)
    assert class_ids(data, model, resolver).tolist() == [0, 1, 0] and resolver.mapping()["how"] == ["class-names"]
    # names that disagree with the ids are no names: the ids are the model's, as said
    odd = read_labelled_data(_write(tmp_path / "odd.csv", "text,label,label_text\na,1,positive\nb,1,negative\n"))
    assert odd.class_names is None and odd.notes == ()


@pytest.mark.parametrize("suffix,row", [(".csv", '"{}",1\n'), (".tsv", "{}\t1\n")])
def test_texts_longer_than_the_csv_modules_field_limit(tmp_path, suffix, row):
    long = "word " * 30000  # 150,000 characters: the csv module's default limit is 131,072
    path = _write(tmp_path / f"long{suffix}", "text,label\n".replace(",", "," if suffix == ".csv" else "\t")
                  + row.format(long) + row.format("short"))
    assert read_labelled_data(path).texts == [long, "short"]
    assert csv.field_size_limit() == 131072  # the limit is lifted for the reading only


@pytest.mark.parametrize("task_name, content, says", [
    ("question-answering", "question,context,answer_text\nWho?,Bob ran.,Bob\nWhen?,Bob ran.,\n",
     "an unanswerable question (SQuAD 2.0) has the answers []"),
    ("token-classification", "tokens,ner_tags\nBob ran,B-PER O\nit rained,\n", "a sentence without entities has an O per word"),
    ("text-classification", "text,label\ngood,1\nbad,\n", "for multi-label data, [] is a row of no class"),
])
def test_an_empty_label_says_what_the_task_writes_instead(tmp_path, task_name, content, says):
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    path = _write(tmp_path / "rows.csv", content)
    with pytest.raises(UserError) as error:
        read_eval_data(path, get_task(task_name))
    column = content.splitlines()[0].split(",")[-1]
    assert str(error.value) == f"Column '{column}' is empty at line 3 of {path}; every row needs a label ({says})."


def test_class_ids_are_no_similarity_scores(tmp_path):
    """An NLI file (premise, hypothesis, label: a ClassLabel entailment/neutral/contradiction) given to a sentence
    embedding model was ranked against its class ids (a meaningless Spearman); it is refused, and SICK-style numbers
    still read. Also: 'tweet' and 'utterance' are texts, 'intent' a label (hate_speech_offensive, clinc_oos)."""
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    path = tmp_path / "nli.parquet"
    pq.write_table(_hf_table({"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [0, 2]}, MNLI_FEATURES), path)
    data = read_eval_data(path, get_task("feature-extraction"))
    with pytest.raises(UserError, match=r"Column 'label' of .*nli.parquet holds classes \(entailment, neutral, "
                                        r"contradiction, named by the dataset\), not similarity scores; give a column of "
                                        r"numbers, e.g. STS-B's or SICK's relatedness score, with --label-column\.$"):
        similarity_scores(data)
    numbered = {**MNLI_FEATURES, "label": _class_label(["0", "1", "2"])}  # ClassLabel(num_classes=3): numbers
    pq.write_table(_hf_table({"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [0, 2]}, numbered), path)
    assert similarity_scores(read_eval_data(path, get_task("feature-extraction"))).tolist() == [0.0, 2.0]
    classify = get_task("text-classification")
    data = read_eval_data(_write(tmp_path / "hate.csv", ",count,hate_speech,class,tweet\n0,3,0,2,so nice\n"), classify)
    assert (data.columns.text, data.columns.label, data.texts) == ("tweet", "class", ["so nice"])
    data = read_eval_data(_write(tmp_path / "clinc.csv", "utterance,intent\nbook a flight,travel\n"), classify)
    assert (data.columns.text, data.columns.label, data.labels) == ("utterance", "intent", ["travel"])


def test_records_under_any_one_key_of_a_json_object(tmp_path):
    """{"version": ..., "examples": [...]} or {"sentences": [...]}: the records under the one key holding a list of
    objects (it was read as one row: 'no text column (columns found: version, examples)'); a SQuAD-like "version"
    beside them is no SQuAD file; columns of which one holds objects stay columns."""
    path = _write(tmp_path / "ex.json", json.dumps({"version": "1.0", "examples": [
        {"text": "great", "label": "positive"}, {"text": "bad", "label": "negative"}]}))
    data = read_labelled_data(path)
    assert (data.texts, data.labels, data.file_format) == (["great", "bad"], ["positive", "negative"], "JSON records")
    path = _write(tmp_path / "cols.json", json.dumps({"question": ["q1"], "context": ["c1"],
                                                      "answers": [{"text": ["a"], "answer_start": [0]}]}))
    data = read_labelled_data(path, _task_columns("question-answering"))
    assert (data.texts, data.pairs, data.file_format) == (["q1"], ["c1"], "JSON columns")


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_unicode_encodings_read_the_same_rows_in_every_text_format(tmp_path, codec):
    """UTF-16 (Excel's Unicode Text, PowerShell's Out-File; with a byte-order mark, or none), UTF-32 and UTF-8 with a
    BOM were 'not UTF-8' in every text format; each now reads as its UTF-8 twin does."""
    import gzip

    from inferforge.labelled_data import read_texts

    rows = [{"text": "Un café “crème” – 5 €", "label": "positive"}, {"text": "naïve 日本語 😀", "label": "negative"}]
    files = {"t.csv": "text,label\n" + "".join(f"\"{r['text']}\",{r['label']}\n" for r in rows),
             "t.tsv": "text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows),
             "t.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
             "t.json": json.dumps(rows, ensure_ascii=False)}
    for name, content in files.items():
        plain = _write(tmp_path / f"plain-{name}", content)
        encoded = tmp_path / f"{codec}-{name}"
        encoded.write_bytes(content.encode(codec))
        expected = read_labelled_data(plain)
        for path in (encoded, _gz(encoded, gzip)):
            data = read_labelled_data(path)
            assert (data.texts, data.labels) == (expected.texts, expected.labels) == ([r["text"] for r in rows],
                                                                                        [r["label"] for r in rows])
            assert all("byte-order mark" in n for n in data.notes) and len(data.notes) == (codec in ("utf-16-le",
                                                                                                       "utf-16-be"))
    conll = tmp_path / "t.conll"
    conll.write_bytes("Müller B-PER\nsagt O\n\nKöln B-LOC\n".encode(codec))
    assert read_labelled_data(conll, text_is_list=True).texts == ["Müller sagt", "Köln"]
    lines = tmp_path / "calibration.txt"
    lines.write_bytes("première ligne\nzweite Zeile\n".encode(codec))
    assert read_texts(lines).texts == ["première ligne", "zweite Zeile"]


def _gz(path, gzip):
    packed = path.with_name(path.name + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    return packed


def test_a_workbook_without_openpyxl_is_refused_naming_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "labels.xlsx"
    path.write_bytes(b"PK\x03\x04")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as where it is not installed: importing it fails
    with pytest.raises(UserError, match=r"Reading .*labels.xlsx \(an Excel workbook\) needs openpyxl, which is not "
                                        r"installed here; install it \(pip install openpyxl\) or save the sheet as CSV"):
        read_labelled_data(path)


def test_integer_labels_in_json_are_read_as_the_csv_cells_of_the_same_number(tmp_path):
    """A model whose classes are named by numbers ("-1", "0", "1": a sentiment model's id2label) reads the CSV cell "1"
    as its label named "1" (id 2); the same label written as a JSON Lines or Parquet integer must be read the same way,
    not as the model's id 1 (named "0"), and -1 is then that model's class, not a row without gold label."""
    model = ["-1", "0", "1"]
    csv_data = read_labelled_data(_write(tmp_path / "n.csv", "text,label\na,1\nb,0\nc,-1\n"))
    jsonl = _write(tmp_path / "n.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n'
                                         '{"text": "c", "label": -1}\n')
    json_data = read_labelled_data(jsonl)
    assert class_ids(csv_data, model).tolist() == [2, 1, 0]
    assert class_ids(json_data, model).tolist() == [2, 1, 0]
    # ids stay ids where the model's names are not numbers
    ids = read_labelled_data(_write(tmp_path / "i.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n'))
    assert class_ids(ids, ["negative", "positive"]).tolist() == [1, 0]


def test_entity_spans_of_chinese_and_japanese_text_are_read_character_by_character(tmp_path):
    """Chinese and Japanese text has no spaces between words: read as one 'word' per clause, a span inside it gave the
    whole clause the entity's tag (我在北京工作 scored as one LOC entity) and two spans in one clause were refused. As
    BERT's tokenizer and Chinese NER corpora do, each CJK character (and kana) is a word."""
    from inferforge.entity_spans import _span_tags

    assert _span_tags("我在北京工作。", [[2, 4, "LOC"]], "x") == ("我 在 北 京 工 作 。",
                                                             ["O", "O", "B-LOC", "I-LOC", "O", "O", "O"])
    assert _span_tags("张三在北京", [[0, 2, "PER"], [3, 5, "LOC"]], "x")[1] == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    assert _span_tags("東京タワーに行った", [[0, 5, "LOC"]], "x")[1] == ["B-LOC"] + ["I-LOC"] * 4 + ["O"] * 4
    # Latin text still splits at spaces and punctuation, a run of letters and digits one word
    assert _span_tags("John lives in New York.", [[0, 4, "PER"], [14, 22, "LOC"]], "x") == (
        "John lives in New York .", ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"])
    data = read_labelled_data(_write(tmp_path / "zh.jsonl", '{"text": "我在北京工作。", "label": [[2, 4, "LOC"]]}\n'),
                              DataColumns(task="token-classification"), text_is_list=True)
    assert data.texts == ["我 在 北 京 工 作 。"] and data.labels == [["O", "O", "B-LOC", "I-LOC", "O", "O", "O"]]


def test_a_column_of_numbers_is_read_as_ids_or_as_names_throughout(tmp_path):
    """A star-rating model named "1".."5" given ids 0..4 (yelp_review_full written to CSV or JSON Lines): 0 is no name,
    so every number is an id (1 is "2", not the name "1" beside an id 0 in the same column); given 1..5, all names."""
    model = ["1", "2", "3", "4", "5"]
    for suffix, rows in (("csv", "text,label\na,0\nb,1\nc,4\n"),
                         ("jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", "label": 4}\n')):
        ids = read_labelled_data(_write(tmp_path / f"ids.{suffix}", rows))
        assert class_ids(ids, model).tolist() == [0, 1, 4]
    names = read_labelled_data(_write(tmp_path / "names.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 5}\n'))
    assert class_ids(names, model).tolist() == [0, 4]


def test_split_slice_counts_the_rows_as_datasets_does_blank_ones_too(tmp_path):
    """--eval-split test[:4] is rows 0-3 of the split as datasets slices it (a blank text is a row there too); the
    blank rows among them are then left out. Counting the slice after blank rows were dropped read other rows."""
    import csv

    path = tmp_path / "reviews.csv"
    cells = [("good film", "1"), ("", "0"), ("bad film", "0"), ("   ", "1"), ("fine", "1"), ("awful", "0"), ("ok", "1")]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *cells])
    with path.open(newline="") as f:
        table = list(csv.DictReader(f))

    def reference(rows):  # datasets' slice of the rows, then the rows with text
        return [r["text"] for r in rows if r["text"].strip()]

    columns = _task_columns("text-classification")
    assert read_labelled_data(path, columns, split="test[:4]").texts == reference(table[:4]) == ["good film", "bad film"]
    assert read_labelled_data(path, columns, split="test[4:]").texts == reference(table[4:])
    assert read_labelled_data(path, columns, split="test[:50%]").texts == reference(table[:round(len(table) / 2)])
    data = read_labelled_data(path, columns, split="test[:4]")
    assert f"rows [:4] of {path} are used: 4 of 7" in data.notes
    assert any("2 rows have no text" in note and "2 of the 4 rows" in note for note in data.notes)


def test_conllu_forms_with_spaces_are_read_as_their_parts(tmp_path):
    """CoNLL-U v2 allows spaces in FORM (UD Vietnamese "Hà Nội", French "10 000" with a no-break space); such a word was
    refused ('a non-empty list of words without spaces'). It is read as its white-space parts, each with the word's
    tags, so the text joined by spaces and its tags stay word for word (what the scoring splits at white space)."""
    path = tmp_path / "vi.conllu"
    _write(path, "# text = Tôi ở Hà Nội 10\u00a0000 năm\n"
                 "1\tTôi\ttôi\tPRON\tP\t_\t2\tnsubj\t_\t_\n"
                 "2\tở\tở\tVERB\tV\t_\t0\troot\t_\t_\n"
                 "3\tHà Nội\tHà Nội\tPROPN\tNp\t_\t2\tobj\t_\t_\n"
                 "4\t10\u00a0000\t10\u00a0000\tNUM\tM\t_\t5\tnummod\t_\t_\n"
                 "5\tnăm\tnăm\tNOUN\tN\t_\t2\tobl\t_\t_\n\n")
    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    words = ["Tôi", "ở", "Hà", "Nội", "10", "000", "năm"]
    upos = ["PRON", "VERB", "PROPN", "PROPN", "NUM", "NUM", "NOUN"]
    assert data.texts == [" ".join(words)] and data.texts[0].split() == words
    assert tag_sequences(data, sorted(set(upos))) == [upos]
    assert data.notes == (f"2 words hold spaces in their FORM (the first, 'Hà Nội', at line 4 of {path}): each is "
                          f"read as its space-separated parts, every part with the word's tags",)


def test_struct_fields_named_with_a_dot(tmp_path):
    """A Parquet struct column (or a JSON object) holding the text or the label: `--text-column meta.text` reads that
    field, as pyarrow's / datasets' flatten() names it (it was 'has no column meta.text'); the error that finds no text
    column names the struct's fields."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"meta": [{"text": "good film", "lang": "en"}, {"text": "bad film", "lang": "en"},
                               {"text": None, "lang": "fr"}],
                      "gold": [{"label": "positive"}, {"label": "negative"}, {"label": "negative"}]})
    pq.write_table(table, tmp_path / "nested.parquet")
    flat = table.flatten()  # the reference: pyarrow's own names and values of the fields
    columns = DataColumns(text="meta.text", label="gold.label")
    data = read_labelled_data(tmp_path / "nested.parquet", columns)
    texts = flat.column("meta.text").to_pylist()
    assert data.texts == [t for t in texts if t] == ["good film", "bad film"]
    assert data.labels == flat.column("gold.label").to_pylist()[:2]
    assert any("1 row has no text" in note for note in data.notes)
    (tmp_path / "nested.jsonl").write_text("".join(json.dumps({"meta": {"text": t}, "gold": {"label": g}}) + "\n"
                                                   for t, g in (("good film", "positive"), ("bad film", "negative"))))
    assert read_labelled_data(tmp_path / "nested.jsonl", columns).texts == ["good film", "bad film"]
    with pytest.raises(UserError, match=r"has no text column .*\('meta' holds meta\.text, meta\.lang; 'gold' holds "
                                        r"gold\.label: name such a field with a dot, e.g\. --text-column meta\.text\)"):
        read_labelled_data(tmp_path / "nested.parquet")


def test_token_lists_with_spaced_words_keep_their_entities(tmp_path):
    """A token list whose words hold spaces (datasets' universal_dependencies vi_vtb "Hà Nội", a French "10 000") was
    refused ('a list of words without spaces'). Each such word is read as its parts, tagged so that every gold entity
    keeps its type and its characters in the text (the words joined by spaces: the same text either way), IOB2 and
    IOBES alike; the output says so."""
    from inferforge.metrics import entities

    rows = [{"tokens": ["Alice", "flew", "to", "New York", "and", "Hà Nội"], "ner_tags": ["B-PER", "O", "O", "B-LOC", "O", "S-LOC"]},
            {"tokens": ["Bob", "met", "Mary  Ann", "Smith", "in", "Le\u00a0Mans"], "ner_tags": ["B-PER", "O", "B-PER", "I-PER", "O", "U-LOC"]},
            {"tokens": ["no", "space"], "ner_tags": ["O", "O"]}]
    path = tmp_path / "spaced.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def char_entities(words, tags, text):  # (type, first char, end char) of each entity, words found left to right
        spans, at = [], 0
        for word in words:
            start = text.index(word.split()[0], at)
            at = start + len(" ".join(word.split()))
            spans.append((start, at))
        return {(kind, spans[a][0], spans[b][1]) for kind, a, b in entities(tags)}

    data = read_labelled_data(path, _task_columns("token-classification"), text_is_list=True)
    for row, text, tags in zip(rows, data.texts, data.labels):
        assert text == " ".join(" ".join(w.split()) for w in row["tokens"])
        assert len(text.split()) == len(tags)
        assert char_entities(text.split(), tags, text) == char_entities(row["tokens"], row["ner_tags"], text)
    assert data.labels[0] == ["B-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-LOC", "E-LOC"]
    assert data.labels[1][-2:] == ["B-LOC", "L-LOC"]
    assert any(note.startswith(f"2 rows of {path} hold words with spaces (the first, 'New York', at line 1 of")
               for note in data.notes)


def test_records_under_data_beside_a_version_are_no_squad_file(tmp_path):
    """{"version": ..., "data": [{"text", "label"}, ...]}, the layout datasets reads with load_dataset("json",
    field="data"), was taken for SQuAD by its "version" key and refused ('Article 1 ... has no paragraphs list; is this
    a SQuAD file?'). Its records are read as datasets reads them; a SQuAD file is still one."""
    records = [{"text": "great film", "label": "positive"}, {"text": "bad film", "label": "negative"}]
    path = _write(tmp_path / "wrapped.json", json.dumps({"version": "1.0", "data": records}))
    data = read_labelled_data(path)
    assert (data.texts, data.labels) == ([r["text"] for r in records], [r["label"] for r in records])
    squad = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}
    qa = read_labelled_data(_write(tmp_path / "squad.json", json.dumps(squad)), _task_columns("question-answering"))
    assert (qa.texts, qa.pairs, qa.file_format) == (["Where is Paris?"], ["Paris is in France."], "SQuAD JSON")


def test_a_saved_dataset_without_split_name_says_the_split_does_not_apply(tmp_path):
    """Dataset.from_dict(...).save_to_disk(...) names no split (state.json _split null): --eval-split 'test[:3]' said
    "split 'None' of ... is used (asked for 'test')". It says the split does not apply and the slice does, counted as
    datasets counts (blank rows too)."""
    folder = tmp_path / "saved"
    texts = ["", "premise 1", "premise 2", "premise 3"]
    _save_to_disk(folder, pa.table({**_mnli([0, 1, 2, 0]), "premise": texts}), None, MNLI_FEATURES)
    data = read_labelled_data(folder, _task_columns("text-classification"), split="test[:3]")
    assert data.texts == [t for t in texts[:3] if t]
    assert data.notes[0] == (f"--eval-split 'test' does not apply to {folder}, a saved Dataset without a split "
                             f"name: all of it is read, then sliced")
    assert not any("'None'" in note for note in data.notes)
