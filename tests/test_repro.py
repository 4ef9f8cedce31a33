"""gip.domain.repro: finding the reproduction in an issue body (pure)."""

from __future__ import annotations

from gip.domain.repro import (
    JAVASCRIPT,
    PYTHON,
    SHELL,
    TYPESCRIPT,
    find_repro,
    guess_language,
    output_matches,
)

ISSUE_FORM = """### Describe the bug

Calling `frob()` crashes.

### Reproduction Steps

```python
import sys
print("### not a heading")
sys.exit(3)
```

### Expected behavior

It should not raise `TypeError: never mind`.

### Actual behavior

```
Traceback (most recent call last):
  File "x.py", line 3, in <module>
ValueError: frob exploded
```

### Environment

_No response_
"""


def test_issue_form_section_python_block_is_found_whole_despite_hash_lines_inside_the_fence():
    repro = find_repro(ISSUE_FORM)
    assert repro.snippet is not None
    assert repro.snippet.language == PYTHON
    assert repro.snippet.source == "section"
    assert 'print("### not a heading")' in repro.snippet.code
    assert repro.snippet.code.endswith("sys.exit(3)")


def test_expected_error_comes_from_the_actual_behaviour_log_not_from_the_expected_section():
    repro = find_repro(ISSUE_FORM)
    assert "ValueError: frob exploded" in repro.expected_errors
    assert not any("never mind" in text for text in repro.expected_errors)


def test_fence_with_repro_info_string_wins_over_the_section():
    body = ISSUE_FORM + "\n```bash repro\necho hi\nexit 1\n```\n"
    repro = find_repro(body)
    assert repro.snippet is not None
    assert (repro.snippet.language, repro.snippet.source) == (SHELL, "repro-fence")
    assert repro.snippet.code == "echo hi\nexit 1"


def test_bare_repro_fence_guesses_language_from_shebang():
    repro = find_repro("text\n\n```repro\n#!/usr/bin/env python3\nprint(1)\n```\n")
    assert repro.snippet is not None and repro.snippet.language == PYTHON


def test_no_response_section_means_no_repro_with_a_reason():
    body = "### Reproduction Steps\n\n_No response_\n\n### Expected behavior\n\nworks\n"
    repro = find_repro(body)
    assert repro.snippet is None
    assert "Reproduction Steps" in repro.reason


def test_no_response_inside_a_rendered_fence_is_empty_too():
    body = "### Steps to reproduce\n\n```shell\n_No response_\n```\n"
    assert find_repro(body).snippet is None


def test_section_prefers_shell_then_python_then_typescript_and_joins_same_language_blocks():
    body = (
        "### Steps to reproduce\n\n```js\nconsole.log(1)\n```\n\n```sh\npip install x\n```\n\n"
        "```python\nprint(2)\n```\n\n```bash\nx --crash\n```\n"
    )
    repro = find_repro(body)
    assert repro.snippet is not None
    assert repro.snippet.language == SHELL
    assert repro.snippet.code == "pip install x\nx --crash"


def test_console_block_keeps_only_prompt_lines():
    body = "## How to reproduce\n\n```console\n$ echo one\none\n$ false\n```\n"
    repro = find_repro(body)
    assert repro.snippet is not None
    assert repro.snippet.code == "echo one\nfalse"


def test_typescript_and_javascript_languages_are_recognised():
    ts = find_repro("### Reproduction\n\n```ts\nconst x: number = 1\n```\n")
    js = find_repro("### Reproduction\n\n```javascript\nconsole.log(1)\n```\n")
    assert ts.snippet is not None and ts.snippet.language == TYPESCRIPT
    assert js.snippet is not None and js.snippet.language == JAVASCRIPT


def test_heading_inside_a_tilde_fence_does_not_start_a_section():
    body = "### Reproduction Steps\n\n~~~sh\ncat <<EOF\n### Expected behavior\nEOF\nexit 2\n~~~\n"
    repro = find_repro(body)
    assert repro.snippet is not None
    assert repro.snippet.code == "cat <<EOF\n### Expected behavior\nEOF\nexit 2"


def test_body_without_any_snippet_says_why():
    assert find_repro("It is broken, please fix.").snippet is None
    assert "empty" in find_repro("").reason
    assert find_repro(None).snippet is None


def test_code_in_other_sections_is_not_run():
    body = "### Environment\n\n```sh\nuname -a\n```\n"
    assert find_repro(body).snippet is None


def test_quoted_blockquote_error_and_error_fence_are_expected_errors():
    body = "> botocore.exceptions.ClientError: AccessDenied\n\n```error\nE: fatal thing happened\n```\n"
    expected = find_repro(body).expected_errors
    assert "botocore.exceptions.ClientError: AccessDenied" in expected
    assert "E: fatal thing happened" in expected


def test_output_matching_ignores_whitespace_differences():
    assert output_matches("x\nValueError:   frob\n  exploded\n", ["ValueError: frob exploded"]) == "ValueError: frob exploded"
    assert output_matches("all good", ["ValueError: frob exploded"]) is None


def test_guess_language_keywords():
    assert guess_language("import os\nprint(os.getcwd())") == PYTHON
    assert guess_language("const a = require('a')") == JAVASCRIPT
    assert guess_language("ls -la") == SHELL


def test_crlf_bodies_as_github_sends_them_parse_the_same():
    body = ISSUE_FORM.replace("\n", "\r\n")
    repro = find_repro(body)
    assert repro.snippet is not None and repro.snippet.code.endswith("sys.exit(3)")
    assert "\r" not in repro.snippet.code
    assert "ValueError: frob exploded" in repro.expected_errors


def test_longer_closing_fence_and_inner_shorter_fence():
    body = "### Reproduction\n\n````bash\ncat <<'EOF'\n```\n### inside\n```\nEOF\nexit 4\n````\n"
    repro = find_repro(body)
    assert repro.snippet is not None
    assert repro.snippet.code.endswith("exit 4")
    assert "### inside" in repro.snippet.code
