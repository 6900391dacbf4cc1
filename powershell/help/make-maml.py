"""Writes the MAML help of the module's cmdlet (what Get-Help reads for a
binary cmdlet) from powershell/help/<cmdlet>.json and the cmdlet's C# source,
which gives each parameter's type, sets, position and pipeline input.

usage: python3 make-maml.py HELP.json CMDLET.cs OUT.xml"""

import json
import re
import sys
from xml.sax.saxutils import escape


def parameters(cs: str) -> list:
    out = []
    pattern = r"((?:\[[^\]]*\]\s*)+)public (\w+(?:\[\])?) (\w+) \{"
    for m in re.finditer(pattern, cs):
        attrs, typ, name = m.groups()
        if "[Parameter" not in attrs:
            continue
        sets = re.findall(r'ParameterSetName = "(\w+)"', attrs)
        position = re.search(r"Position = (\d+)", attrs)
        out.append({
            "name": name,
            "type": {"SwitchParameter": "switch"}.get(typ, typ),
            "sets": sets,
            "mandatory": "Mandatory = true" in attrs,
            "pipeline": "ValueFromPipeline = true" in attrs,
            "position": position.group(1) if position else "named",
            "values": re.findall(r'"([^"]+)"', (re.search(r"ValidateSet\(([^)]*)\)", attrs) or re.match("", "")).group(1) if "ValidateSet" in attrs else ""),
        })
    return out


def para(text: str) -> str:
    return f"<maml:para>{escape(text)}</maml:para>"


def parameter_xml(p: dict, text: str, default: str) -> str:
    values = "".join(f"<command:parameterValue required=\"true\">{escape(v)}</command:parameterValue>" for v in p["values"])
    value = "" if p["type"] == "switch" else f"<command:parameterValue required=\"true\">{escape(p['type'])}</command:parameterValue>"
    return (
        f'<command:parameter required="{str(p["mandatory"]).lower()}" globbing="false" '
        f'pipelineInput="{"true (ByValue)" if p["pipeline"] else "false"}" position="{p["position"]}">'
        f"<maml:name>{p['name']}</maml:name><maml:description>{para(text)}</maml:description>"
        f"{value}{values}<dev:type><maml:name>{escape(p['type'])}</maml:name></dev:type>"
        f"<dev:defaultValue>{escape(default)}</dev:defaultValue></command:parameter>"
    )


def default_of(h: dict, p: dict) -> str:
    """A parameter's default as help shows it: a switch is off; every other
    parameter's is written in the help JSON (a missing one is an error)."""
    if p["type"] == "switch":
        return "False"
    return h["defaults"][p["name"]]


def link_xml(link: dict) -> str:
    return (f"<maml:navigationLink><maml:linkText>{escape(link['text'])}</maml:linkText>"
            f"<maml:uri>{escape(link['uri'])}</maml:uri></maml:navigationLink>")


def main() -> int:
    help_path, cs_path, out_path = sys.argv[1:4]
    h = json.load(open(help_path, encoding="utf-8"))
    params = parameters(open(cs_path, encoding="utf-8").read())
    missing = [p["name"] for p in params if p["name"] not in h["parameters"]]
    extra = [n for n in h["parameters"] if n not in {p["name"] for p in params}]
    if missing or extra or not params:
        print(f"help and cmdlet disagree: undocumented {missing}, documenting no parameter {extra}", file=sys.stderr)
        return 1
    no_default = [p["name"] for p in params if p["type"] != "switch" and p["name"] not in h["defaults"]]
    if no_default:
        print(f"help gives no default value for {no_default}", file=sys.stderr)
        return 1
    verb, noun = h["name"].split("-", 1)
    sets = sorted({s for p in params for s in p["sets"]}) or ["__AllParameterSets"]
    syntax = ""
    for s in sets:
        members = [p for p in params if not p["sets"] or s in p["sets"]]
        syntax += f"<command:syntaxItem><maml:name>{h['name']}</maml:name>" + "".join(parameter_xml(p, h["parameters"][p["name"]], default_of(h, p)) for p in members) + "</command:syntaxItem>"
    examples = "".join(
        f"<command:example><maml:title>-------------------------- Example {i} --------------------------</maml:title>"
        f"<dev:code>{escape(e['code'])}</dev:code><dev:remarks>{para(e['remarks'])}</dev:remarks></command:example>"
        for i, e in enumerate(h["examples"], 1)
    )
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<helpItems schema="maml" xmlns="http://msh">'
        '<command:command xmlns:maml="http://schemas.microsoft.com/maml/2004/10" '
        'xmlns:command="http://schemas.microsoft.com/maml/dev/command/2004/10" '
        'xmlns:dev="http://schemas.microsoft.com/maml/dev/2004/10">'
        f"<command:details><command:name>{h['name']}</command:name><command:verb>{verb}</command:verb><command:noun>{noun}</command:noun>"
        f"<maml:description>{para(h['synopsis'])}</maml:description></command:details>"
        f"<maml:description>{''.join(para(t) for t in h['description'])}</maml:description>"
        f"<command:syntax>{syntax}</command:syntax>"
        f"<command:parameters>{''.join(parameter_xml(p, h['parameters'][p['name']], default_of(h, p)) for p in params)}</command:parameters>"
        "<command:inputTypes><command:inputType><dev:type><maml:name>System.Object[]</maml:name></dev:type>"
        f"<maml:description>{para('Requests: strings, hashtables or objects.')}</maml:description></command:inputType></command:inputTypes>"
        "<command:returnValues><command:returnValue><dev:type><maml:name>AzBatch.Response</maml:name></dev:type>"
        f"<maml:description>{para('One per request: Name, Status, Succeeded, Body, Headers, Attempts, Pages, Error, BodyEncoding (JSON text with -Raw).')}</maml:description></command:returnValue></command:returnValues>"
        f"<command:examples>{examples}</command:examples>"
        f"<command:relatedLinks>{''.join(link_xml(l) for l in h['links'])}</command:relatedLinks>"
        "</command:command></helpItems>\n"
    )
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(xml)
    return 0


if __name__ == "__main__":
    sys.exit(main())
