"""minictl output: the tabwriter, Table rows, YAML/JSON/name/jsonpath/custom-columns printers."""

from __future__ import annotations

import json

import pytest

from apimachinery.jsonpath import JSONPathError, Template, relaxed
from minictl.printing import (
    CustomColumns,
    TableOptions,
    dump_json,
    dump_yaml,
    format_cell,
    render_objects,
    table_lines,
    tabwrite,
    validate_output,
)


def test_tabwrite_pads_like_go_tabwriter_for_get() -> None:
    # kubectl get (minwidth 6, padding 3); the last cell of a line is never padded
    out = tabwrite(["NAME\tDATA\tAGE", "kube-root-ca.crt\t1\t20m", "multi\t2\t14m"])
    assert out == ("NAME               DATA   AGE\n"
                   "kube-root-ca.crt   1      20m\n"
                   "multi              2      14m\n")
    assert tabwrite(["A\tB", "x\ty"]) == "A     B\nx     y\n"  # minwidth 6


def test_tabwrite_column_blocks_end_at_shorter_lines() -> None:
    # describe (minwidth 0, padding 2): a line without a tab ends the column block
    out = tabwrite(["Name:\tx", "Namespace:\tdefault", "Containers:", "  c:", "    Image:\tbusybox"],
                   minwidth=0, padding=2)
    assert out == ("Name:       x\n"
                   "Namespace:  default\n"
                   "Containers:\n"
                   "  c:\n"
                   "    Image:  busybox\n")


def test_tabwrite_remembered_widths_while_watching() -> None:
    widths: list[int] = []
    first = tabwrite(["NAME\tDATA", "a-much-longer-name\t1"], remember=widths)
    later = tabwrite(["b\t2"], remember=widths)
    assert first.splitlines()[1].index("1") == later.index("2")


def test_format_cell_like_fmt_print() -> None:
    assert [format_cell(v) for v in (1, 2.0, 1.5, True, False, None, "x")] == \
        ["1", "2", "1.5", "true", "false", "<nil>", "x"]


TABLE = {
    "kind": "Table",
    "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Ready", "type": "string", "format": "", "priority": 0},
        {"name": "IP", "type": "string", "format": "", "priority": 1},
    ],
    "rows": [
        {"cells": ["web-1", "1/1", "10.244.0.5"],
         "object": {"metadata": {"name": "web-1", "namespace": "prod", "labels": {"b": "2", "a": "1"}}}},
        {"cells": ["db", "0/1", "<none>"], "object": {"metadata": {"name": "db", "namespace": "dev"}}},
    ],
}


def test_table_lines_default_wide_and_decorations() -> None:
    assert table_lines(TABLE, TableOptions()) == ["NAME\tREADY", "web-1\t1/1", "db\t0/1"]
    assert table_lines(TABLE, TableOptions(wide=True))[0] == "NAME\tREADY\tIP"
    lines = table_lines(TABLE, TableOptions(with_namespace=True, show_labels=True, label_columns=["app.io/a"]))
    assert lines == ["NAMESPACE\tNAME\tREADY\tA\tLABELS", "prod\tweb-1\t1/1\t\ta=1,b=2", "dev\tdb\t0/1\t\t<none>"]
    assert table_lines(TABLE, TableOptions(no_headers=True, kind_prefix="pod")) == ["pod/web-1\t1/1", "pod/db\t0/1"]
    assert table_lines(TABLE, TableOptions(watch_event_column=True), event_type="ADDED")[1] == "ADDED\tweb-1\t1/1"
    # watch events after the first carry no headers
    assert table_lines(TABLE, TableOptions(), headers=False) == ["web-1\t1/1", "db\t0/1"]


def test_yaml_like_kubectl() -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {"n": "1"}},
           "kind": "ConfigMap", "data": {"script": "line1\nline2\n", "empty": ""}, "list": [{"b": 1, "a": True}]}
    assert dump_yaml(obj) == (
        "data:\n"
        '  empty: ""\n'
        "  script: |\n"
        "    line1\n"
        "    line2\n"
        "kind: ConfigMap\n"
        "list:\n"
        "- a: true\n"
        "  b: 1\n"
        "metadata:\n"
        "  annotations:\n"
        '    n: "1"\n'
        '  creationTimestamp: "2026-01-01T00:00:00Z"\n'
        "  name: x\n")


def test_json_like_kubectl() -> None:
    assert dump_json({"b": [1], "a": "é"}) == '{\n    "a": "é",\n    "b": [\n        1\n    ]\n}\n'


def test_render_objects_single_and_list_without_managed_fields() -> None:
    a = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "managedFields": [{"manager": "m"}]}}
    b = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}
    single = json.loads(render_objects([a], "json", single=True))
    assert single == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}
    many = json.loads(render_objects([a, b], "json", single=False))
    assert many["kind"] == "List" and many["metadata"] == {"resourceVersion": ""}
    assert [i["metadata"]["name"] for i in many["items"]] == ["a", "b"]
    assert "managedFields" in render_objects([a], "yaml", single=True, show_managed_fields=True)
    assert render_objects([a, b], "jsonpath={.items[*].metadata.name}", single=False) == "a b"


def test_custom_columns() -> None:
    objs = [{"metadata": {"name": "a"}, "spec": {"containers": [{"image": "x"}, {"image": "y"}]}},
            {"metadata": {"name": "bb"}, "spec": {}}]
    out = CustomColumns("NAME:.metadata.name,IMAGES:spec.containers[*].image").render_many(objs)
    assert out == "NAME   IMAGES\na      x,y\nbb     <none>\n"


def test_output_validation_messages() -> None:
    validate_output("jsonpath={.a}")
    with pytest.raises(ValueError, match="unable to match a printer"):
        validate_output("xml")
    with pytest.raises(ValueError):
        validate_output("custom-columns=NOPATH")


DOC = {"kind": "List", "items": [
    {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
     "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Init", "status": "False"}],
                "restarts": 3}},
    {"metadata": {"name": "b"}, "status": {"restarts": 0}},
]}


@pytest.mark.parametrize(("template", "expected"), [
    ("{.items[*].metadata.name}", "a b"),
    ("{.items[0].metadata.name}", "a"),
    ("{.items[-1].metadata.name}", "b"),
    ("{.items[0:1].metadata.name}", "a"),
    ("{.items[0,1].status.restarts}", "3 0"),
    ('{.items[0].metadata.labels.app\\.kubernetes\\.io/name}', "web"),
    ('{.items[0].status.conditions[?(@.type=="Ready")].status}', "True"),
    ("{.items[?(@.status.restarts>1)].metadata.name}", "a"),
    ("{.items[?(@.metadata.labels)].metadata.name}", "a"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{.status.restarts}{"\\n"}{end}', "a\t3\nb\t0\n"),
    ("{.items[1].metadata}", '{"name":"b"}'),
    ("{.kind}/{.missing}/", "List//"),
    ("{..restarts}", "3 0"),
    ("{$.items[1]['metadata']}", '{"name":"b"}'),
    ("plain text", "plain text"),
])
def test_jsonpath_templates(template: str, expected: str) -> None:
    assert Template(template).render(DOC) == expected


def test_jsonpath_errors_and_relaxed() -> None:
    with pytest.raises(JSONPathError):
        Template("{.a")
    with pytest.raises(JSONPathError):
        Template("{end}")
    with pytest.raises(JSONPathError):
        Template("{range .items[*]}")
    assert relaxed("metadata.name") == "{.metadata.name}"
    assert relaxed("{.a}") == "{.a}"
