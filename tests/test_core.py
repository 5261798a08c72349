"""lla.io (atomic writes), lla.errors (messages), lla.config (params.yaml access), lla.cli."""

import json
import os
from pathlib import Path

import pytest

from lla import cli, config, io
from lla.data import registry
from lla.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


# --- atomic writes -------------------------------------------------------------------------

def test_atomic_write_json_roundtrip_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "out.json"
    io.atomic_write_json(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_suffix_is_visible_to_writers(tmp_path):
    with io.atomic_path(tmp_path / "img.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"x")
    assert (tmp_path / "img.png").read_bytes() == b"x"


def test_read_json_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(DataError) as err:
        io.read_json(bad)
    # The value is missing on line 3; json reports the error where it sees '}' (line 4).
    assert str(err.value).startswith(f"{bad}:4: invalid JSON")


def test_read_json_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        io.read_json(tmp_path / "nope.json")


# --- errors ---------------------------------------------------------------------------------

def test_data_error_message_names_file_line_and_record():
    e = DataError("a/b.odgt", "box 3 has negative width", line=17, record="ID abc")
    assert str(e) == "a/b.odgt:17 [ID abc]: box 3 has negative width"
    assert (e.path, e.line, e.record, e.reason) == ("a/b.odgt", 17, "ID abc", "box 3 has negative width")
    assert str(DataError(None, "empty")) == "<input>: empty"


# --- config ---------------------------------------------------------------------------------

def test_section_merges_profile_over_defaults_recursively():
    params = {"blk": {"defaults": {"a": 1, "n": {"x": 1, "y": 2}}, "mini": {"n": {"y": 5}}}}
    assert config.section(params, "blk", "mini") == {"a": 1, "n": {"x": 1, "y": 5}}
    assert config.section(params, "blk") == {"a": 1, "n": {"x": 1, "y": 2}}
    # the params themselves are not modified
    assert params["blk"]["defaults"]["n"]["y"] == 2


def test_section_unknown_profile_lists_known_ones():
    params = {"blk": {"defaults": {}, "mini": {}, "micro": {}}}
    with pytest.raises(DataError, match=r"no profile 'big' \(known: micro, mini\)"):
        config.section(params, "blk", "big")


def test_load_params_reports_yaml_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(DataError, match="invalid YAML"):
        config.load_params(bad)


def test_repository_params_define_every_profile_and_dataset():
    params = config.load_params(ROOT / "params.yaml")
    assert set(config.profile_names(params)) >= {"paper", "official_code", "mini", "micro"}
    assert params["profile"] in params["profiles"]
    for profile in config.profile_names(params):
        for dataset in registry.names():
            assert config.dataset_source(params, profile, dataset) in config.DATA_SOURCES


# --- cli ------------------------------------------------------------------------------------

def test_cli_help_lists_groups(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "data" in out and "eval" in out


def test_cli_turns_data_error_into_exit_code_2(capsys, monkeypatch):
    def boom(args):
        raise DataError("x.odgt", "broken", line=3)

    parser = cli.build_parser(groups=[])
    monkeypatch.setattr(cli, "build_parser", lambda groups=None: _with_command(parser, boom))
    assert cli.main(["boom"]) == 2
    assert "error: x.odgt:3: broken" in capsys.readouterr().err


def _with_command(parser, func):
    sub = next(a for a in parser._actions if a.dest == "group")
    sub.add_parser("boom").set_defaults(func=func)
    return parser


def test_atomic_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        io.atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_config_errors_name_the_parameter_file_that_was_loaded(tmp_path):
    params = config.Params({"blk": {"defaults": {}}}, tmp_path / "my_params.yaml")
    with pytest.raises(DataError) as err:
        config.section(params, "blk", "nope")
    assert str(err.value).startswith(f"{tmp_path / 'my_params.yaml'}: section 'blk' has no profile 'nope'")


def test_a_profile_without_a_block_of_its_own_gets_the_defaults():
    params = {"profiles": {"mini": {}, "micro": {}}, "blk": {"defaults": {"a": 1}, "mini": {"a": 2}}}
    assert config.section(params, "blk", "micro") == {"a": 1}
    assert config.section(params, "blk", "mini") == {"a": 2}


def test_loaded_params_dump_as_plain_yaml(tmp_path):
    import yaml

    params = config.load_params(ROOT / "params.yaml")
    assert yaml.safe_load(yaml.safe_dump(params)) == dict(params)


def test_selected_profile_prefers_the_command_line_then_params(tmp_path):
    assert config.selected_profile({"profile": "mini"}, "micro") == "micro"
    assert config.selected_profile({"profile": "mini"}, None) == "mini"
    path = tmp_path / "p.yaml"
    with pytest.raises(DataError) as err:
        config.selected_profile(config.Params({"a": 1}, path), None)
    assert str(err.value).startswith(f"{path}: no --profile given")
    with pytest.raises(DataError, match=r"unknown profile 'big' \(--profile; known: mini\)"):
        config.selected_profile(config.Params({"profiles": {"mini": {}}}, path), "big")
