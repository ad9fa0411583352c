"""Compare PDF text extraction by pypdfium2 and pypdf (and our loader) on real PDFs.

For every corpus folder holding PDFs it prints, per parser: files, pages
extracted, seconds, pages/s, characters, failures and the peak RSS of a fresh
process that did only that work. Each (parser, corpus) pair runs in its own
subprocess so one parser's memory does not hide in another's peak.

Usage (from the repository root)::

    .venv/bin/python benchmarks/pdf_parsers.py                 # ../shared/corpora
    .venv/bin/python benchmarks/pdf_parsers.py --corpora DIR --parsers pypdfium2,pypdf
    .venv/bin/python benchmarks/pdf_parsers.py --repeat 3         # best of 3 passes
    .venv/bin/python benchmarks/pdf_parsers.py --json out.json    # per-file details too

Parsers:
    pypdfium2  page.get_textpage().get_text_range(), page and text page closed
    pypdf      page.extract_text()
    loader     ingest.loaders.open_document(...).pages(), i.e. what ingest runs

Measured with ``--repeat 3`` (best pass; 2 CPUs shared with other jobs, load ~6),
pypdf 7.1.0, pypdfium2 5.15.2, Python 3.11::

    corpus                 parser     pages  seconds  pages/s  fail  peak RSS MB
    finance/sec-10q        pypdfium2   1037     5.26    197.0     0           30
    finance/sec-10q        pypdf        891    88.48     10.1     2           95
    finance/sec-10q        loader      1037     5.15    201.4     0           89
    legal/cuad-dev         pypdfium2    734     1.48    494.3     0           25
    legal/cuad-dev         pypdf        734    12.19     60.2     0           50
    legal/cuad-dev         loader       734     1.50    488.6     0           84
    medical/nih-protocols  pypdfium2    267     0.63    424.6     0           25
    medical/nih-protocols  pypdf        267    12.11     22.0     0           51
    medical/nih-protocols  loader       267     0.64    416.6     1           85

    pypdf: "2023 Q1 MSFT.pdf" and "2023 Q2 MSFT.pdf" raise LimitReachedError
    ("Reached maximum array element count") on opening. loader: the scanned
    NCT06155240_Prot_SAP_000.pdf (a Canon scan, no text) is reported as such.
    The loader's extra RSS (~60 MB) is the import of the ``assistant`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
PARSERS = ("pypdfium2", "pypdf", "loader")


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB.

    Not ``getrusage().ru_maxrss``: on Linux that survives fork and exec, so a
    worker would report its parent's peak whenever the parent's was higher.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _pdfium_pages(path: Path) -> Iterator[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            yield textpage.get_text_range()
            textpage.close()
            page.close()
    finally:
        pdf.close()


def _pypdf_pages(path: Path) -> Iterator[str]:
    import pypdf

    reader = pypdf.PdfReader(str(path))
    if reader.is_encrypted:
        reader.decrypt("")
    for page in reader.pages:
        yield page.extract_text()


def _loader_pages(path: Path) -> Iterator[str]:
    from ingest.loaders import open_document

    with open_document(path, path.name) as reader:
        for page in reader.pages():
            yield page.text


def _worker(parser: str, corpus: Path) -> dict[str, Any]:
    """Extract every PDF of ``corpus`` with ``parser``; runs in a fresh process."""
    pages_of: Callable[[Path], Iterator[str]] = {
        "pypdfium2": _pdfium_pages,
        "pypdf": _pypdf_pages,
        "loader": _loader_pages,
    }[parser]
    files = sorted(p for p in corpus.iterdir() if p.suffix.lower() == ".pdf")
    # Import outside the timed region (and only what this parser needs, so the
    # peak RSS is its own) so the first file does not pay for it.
    if parser == "pypdf":
        import pypdf  # noqa: F401
    else:
        import pypdfium2  # noqa: F401
    if parser == "loader":
        sys.path.insert(0, str(REPO))
        import ingest.loaders  # noqa: F401
    base_rss = _rss_mb("VmRSS")
    result: dict[str, Any] = {"files": len(files), "pages": 0, "chars": 0, "failures": [], "per_file": []}
    start = time.perf_counter()
    for path in files:
        t0, n, chars = time.perf_counter(), 0, 0
        try:
            for text in pages_of(path):
                n += 1
                chars += len(text)
        except Exception as e:  # a benchmark records every failure and goes on
            result["failures"].append(f"{path.name}: {type(e).__name__}: {str(e)[:160]}")
        result["pages"] += n
        result["chars"] += chars
        result["per_file"].append({"file": path.name, "pages": n, "chars": chars, "s": time.perf_counter() - t0})
    result["seconds"] = time.perf_counter() - start
    result["base_rss_mb"] = base_rss
    result["peak_rss_mb"] = _rss_mb("VmHWM")
    return result


def _corpora(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("*") if p.suffix.lower() == ".pdf"})


def main(argv: list[str] | None = None) -> int:
    """Run every parser on every corpus folder and print one table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--parsers", default=",".join(PARSERS))
    ap.add_argument("--repeat", type=int, default=1, help="passes per parser and corpus, in turns; the fastest is shown")
    ap.add_argument("--json", type=Path, help="also write all results, with per-file times, here")
    ap.add_argument("--worker", nargs=2, metavar=("PARSER", "CORPUS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], Path(args.worker[1]))))
        return 0

    import pypdf
    import pypdfium2

    print(f"python {sys.version.split()[0]}, pypdf {pypdf.__version__}, "
          f"pypdfium2 {pypdfium2.PYPDFIUM_INFO} (PDFium {pypdfium2.PDFIUM_INFO})")
    header = f"{'corpus':<24} {'parser':<10} {'files':>5} {'pages':>6} {'seconds':>8} {'pages/s':>8} " \
             f"{'chars':>10} {'fail':>4} {'RSS MB after import':>19} {'peak RSS MB':>11}"
    print(header)
    print("-" * len(header))
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    parsers = args.parsers.split(",")
    for corpus in _corpora(args.corpora):
        for path in corpus.iterdir():  # warm the OS file cache so the first parser is not penalised
            with path.open("rb") as f:
                while f.read(1 << 20):
                    pass
        name = str(corpus.relative_to(args.corpora))
        runs: dict[str, list[dict[str, Any]]] = {parser: [] for parser in parsers}
        # Parsers take turns pass after pass, so a burst of load on this shared
        # machine does not fall on one parser only; the fastest pass is shown.
        for _ in range(args.repeat):
            for parser in parsers:
                out = subprocess.run([sys.executable, __file__, "--worker", parser, str(corpus)],
                                     capture_output=True, text=True, check=True)
                runs[parser].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for parser in parsers:
            r = min(runs[parser], key=lambda run: run["seconds"])
            r["all_seconds"] = [run["seconds"] for run in runs[parser]]
            r["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs[parser])
            results[f"{name}/{parser}"] = r
            rate = r["pages"] / r["seconds"] if r["seconds"] else 0.0
            print(f"{name:<24} {parser:<10} {r['files']:>5} {r['pages']:>6} {r['seconds']:>8.2f} {rate:>8.1f} "
                  f"{r['chars']:>10} {len(r['failures']):>4} {r['base_rss_mb']:>19.0f} {r['peak_rss_mb']:>11.0f}",
                  flush=True)
            failures += [f"  [{parser}] {name}/{f}" for f in r["failures"]]
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()} on {os.cpu_count()} CPUs")
    print("\nfailures:" if failures else "\nfailures: none")
    print("\n".join(failures))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
