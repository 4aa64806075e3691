"""The PDF page set-up every Rampart report shares (fpdf2): DejaVu fonts from ``settings.reports.font_dir`` (a
Unicode TTF: σ, →, ≥, — print as such), landscape A4, margins, a footer with the title and page, headings,
paragraphs and table rows. Without the fonts, ``check_fonts`` raises a ConfigError saying how to install them."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

from core.errors import ConfigError

INK, MUTED = (20, 24, 33), (100, 106, 118)
FONT, MONO = "DejaVu", "DejaVuMono"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "mono": "DejaVuSansMono.ttf"}


def check_fonts(font_dir: Path) -> dict[str, Path]:
    """The TTF files to embed, or ConfigError saying how to get them."""
    paths = {style: Path(font_dir) / name for style, name in FONT_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"PDF font not found: {', '.join(missing)}. Install DejaVu with `make sysdeps` (Debian "
                          "package fonts-dejavu-core) or set RAMPART_REPORTS__FONT_DIR to a folder holding "
                          "DejaVuSans.ttf, DejaVuSans-Bold.ttf and DejaVuSansMono.ttf")
    return paths


class ReportPdf(FPDF):
    """An A4 landscape page with the DejaVu fonts, a footer naming the report, and heading/paragraph/row helpers."""

    def __init__(self, title: str, fonts: dict[str, Path]) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        for style, path in fonts.items():
            if style == "mono":
                self.add_font(MONO, "", str(path))
            else:
                self.add_font(FONT, style, str(path))
        self.title_text = title
        self.set_auto_page_break(True, margin=12)
        self.set_margins(12, 12, 12)

    def footer(self) -> None:
        self.set_y(-9)
        self.set_font(FONT, "", 7)
        self.set_text_color(*MUTED)
        self.cell(0, 4, f"{self.title_text} · page {self.page_no()}", align="R")

    def heading(self, text: str, size: float = 12) -> None:
        self.set_font(FONT, "B", size)
        self.set_text_color(*INK)
        self.cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def para(self, text: str, size: float = 8.5, color: tuple[int, int, int] = INK) -> None:
        self.set_font(FONT, "", size)
        self.set_text_color(*color)
        self.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def row(self, cells: list[tuple[str, float, str]], size: float = 7.5, bold: bool = False,
            fill: tuple[int, int, int] | None = None) -> None:
        self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*INK)
        if fill:
            self.set_fill_color(*fill)
        for text, width, align in cells:
            self.cell(width, size * 0.58, text, align=align, fill=fill is not None)
        self.ln(size * 0.58)


__all__ = ["FONT", "FONT_FILES", "MONO", "ReportPdf", "check_fonts"]
