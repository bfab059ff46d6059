#!/usr/bin/env python3
"""Generates crates/sap-odata/src/schema_generated.rs from SAP's service definition.

Two steps, both reproducible:

  extract   S/4HANA's $metadata (EDMX) of API_SALES_ORDER_SRV -> API_SALES_ORDER_SRV.tsv
            (only what the emulator needs: per property its EDM type, facets, key flag and
            SAP's sap:creatable / sap:updatable annotations; per navigation its target and
            multiplicity). The TSV is committed, so the build needs neither the EDMX nor Python.

  generate  API_SALES_ORDER_SRV.tsv -> ../src/schema_generated.rs

Usage (from this folder):

  python3 generate.py extract path/to/API_SALES_ORDER_SRV.xml > API_SALES_ORDER_SRV.tsv
  python3 generate.py generate                       # rewrites ../src/schema_generated.rs
  python3 generate.py check                          # exits 1 if the .rs is not up to date

The source of the committed TSV is named in its first lines (repository, commit, path).
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
TSV = HERE / "API_SALES_ORDER_SRV.tsv"
RS = HERE.parent / "src" / "schema_generated.rs"

EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
SAP = "{http://www.sap.com/Protocols/SAPData}"

# entity type in the EDMX -> (entity set name, Rust constant prefix)
ENTITIES = {
    "A_SalesOrderType": ("A_SalesOrder", "SALES_ORDER"),
    "A_SalesOrderItemType": ("A_SalesOrderItem", "SALES_ORDER_ITEM"),
    "A_SalesOrderHeaderPartnerType": ("A_SalesOrderHeaderPartner", "SALES_ORDER_HEADER_PARTNER"),
    # the document flow: what follows the order (deliveries, invoices, ...), per header and item
    "A_SalesOrderSubsqntProcFlowType": ("A_SalesOrderSubsqntProcFlow", "SALES_ORDER_SUBSQNT_PROC_FLOW"),
    "A_SalesOrderItmSubsqntProcFlowType": ("A_SalesOrderItmSubsqntProcFlow",
                                           "SALES_ORDER_ITM_SUBSQNT_PROC_FLOW"),
}
COLUMNS = ["entity", "kind", "name", "type", "max_length", "precision", "scale",
           "key", "creatable", "updatable", "target", "to_many"]


def flag(value):
    """SAP's V2 annotations default to true; only an explicit 'false' turns one off."""
    return "false" if value == "false" else "true"


def extract(edmx_path, source_note):
    root = ET.parse(edmx_path).getroot()
    schema = next(root.iter(EDM + "Schema"))
    namespace = schema.get("Namespace")
    associations = {}
    for a in schema.iter(EDM + "Association"):
        associations[a.get("Name")] = {e.get("Role"): e for e in a.findall(EDM + "End")}
    rows = []
    for et in schema.iter(EDM + "EntityType"):
        if et.get("Name") not in ENTITIES:
            continue
        entity = ENTITIES[et.get("Name")][0]
        keys = [k.get("Name") for k in et.find(EDM + "Key")]
        for p in et.findall(EDM + "Property"):
            rows.append([entity, "property", p.get("Name"), p.get("Type"),
                         p.get("MaxLength") or "", p.get("Precision") or "", p.get("Scale") or "",
                         "true" if p.get("Name") in keys else "false",
                         flag(p.get(SAP + "creatable")), flag(p.get(SAP + "updatable")), "", ""])
        for n in et.findall(EDM + "NavigationProperty"):
            assoc = n.get("Relationship").split(".")[-1]
            end = associations[assoc][n.get("ToRole")]
            target = end.get("Type").split(".")[-1]
            target = target[:-4] if target.endswith("Type") else target
            rows.append([entity, "navigation", n.get("Name"), "", "", "", "", "", "", "", target,
                         "true" if end.get("Multiplicity") == "*" else "false"])
    out = sys.stdout
    out.write(f"# Derived from SAP's $metadata of {namespace} by generate.py extract; do not edit.\n")
    for line in source_note:
        out.write(f"# {line}\n")
    out.write("\t".join(COLUMNS) + "\n")
    for r in rows:
        out.write("\t".join(r) + "\n")


def read_tsv():
    rows = []
    header = None
    source = []
    for line in TSV.read_text().splitlines():
        if line.startswith("#"):
            source.append(line[1:].strip())
            continue
        cells = line.split("\t")
        if header is None:
            header = cells
            continue
        rows.append(dict(zip(header, cells)))
    return source, rows


def rust_edm(r):
    t = r["type"]
    if t == "Edm.String":
        return f"EdmType::String {{ max_length: {int(r['max_length'])} }}"
    if t == "Edm.Decimal":
        return f"EdmType::Decimal {{ precision: {int(r['precision'])}, scale: {int(r['scale'])} }}"
    if t == "Edm.DateTime":
        return "EdmType::DateTime"
    if t == "Edm.DateTimeOffset":
        return "EdmType::DateTimeOffset"
    if t == "Edm.Boolean":
        return "EdmType::Boolean"
    if t == "Edm.Guid":
        return "EdmType::Guid"
    if t == "Edm.Time":
        return "EdmType::Time"
    raise SystemExit(f"unsupported EDM type {t} of {r['entity']}.{r['name']}")


def render():
    source, rows = read_tsv()
    o = []
    o.append("// Generated by crates/sap-odata/schema/generate.py from API_SALES_ORDER_SRV.tsv,")
    o.append("// which was extracted from S/4HANA's $metadata of API_SALES_ORDER_SRV:")
    for s in source:
        o.append(f"//   {s}")
    o.append("// Do not edit by hand: change the TSV (or extract it again) and run generate.py.")
    o.append("")
    o.append("use super::{EdmType, Navigation, Property};")
    for entity, prefix in [v for v in ENTITIES.values()]:
        props = [r for r in rows if r["entity"] == entity and r["kind"] == "property"]
        navs = [r for r in rows if r["entity"] == entity and r["kind"] == "navigation"]
        o.append("")
        o.append(f"/// Properties of `{entity}`, in the order of SAP's service definition.")
        o.append(f"pub static {prefix}_PROPERTIES: &[Property] = &[")
        for r in props:
            o.append(f"    Property {{ name: \"{r['name']}\", edm: {rust_edm(r)}, key: {r['key']}, "
                     f"creatable: {r['creatable']}, updatable: {r['updatable']} }},")
        o.append("];")
        o.append("")
        o.append(f"/// Navigation properties of `{entity}`.")
        o.append(f"pub static {prefix}_NAVIGATIONS: &[Navigation] = &[")
        for r in navs:
            o.append(f"    Navigation {{ name: \"{r['name']}\", target: \"{r['target']}\", "
                     f"to_many: {r['to_many']} }},")
        o.append("];")
    return "\n".join(o) + "\n"


def main(argv):
    if len(argv) >= 3 and argv[1] == "extract":
        extract(argv[2], argv[3:])
    elif len(argv) == 2 and argv[1] == "generate":
        RS.write_text(render())
    elif len(argv) == 2 and argv[1] == "check":
        if RS.read_text() != render():
            print(f"{RS} is not up to date: run generate.py generate", file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
