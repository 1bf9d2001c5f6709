"""A small bar-chart PNG writer in pure Python (zlib + struct), with a built-in 5x7
bitmap font (upper case, digits and a little punctuation), for the side-by-side
benchmark report (benches/bench.py). No third-party packages."""
import struct, zlib

_F = {
    "A": [" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"],
    "B": ["#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "],
    "C": [" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "],
    "D": ["#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "],
    "E": ["#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"],
    "F": ["#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "],
    "G": [" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"],
    "H": ["#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"],
    "I": [" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    "J": ["  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "],
    "K": ["#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"],
    "L": ["#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"],
    "M": ["#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"],
    "N": ["#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"],
    "O": [" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "],
    "P": ["#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "],
    "Q": [" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"],
    "R": ["#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"],
    "S": [" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "],
    "T": ["#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "],
    "U": ["#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "],
    "V": ["#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "],
    "W": ["#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "],
    "X": ["#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"],
    "Y": ["#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "],
    "Z": ["#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"],
    "0": [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
    "1": ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    "2": [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    "3": ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
    "4": ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
    "5": ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
    "6": ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
    "7": ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
    "8": [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
    "9": [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
    ".": ["     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "],
    ",": ["     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "],
    ":": ["     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "],
    "-": ["     ", "     ", "     ", "#####", "     ", "     ", "     "],
    "+": ["     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "],
    "=": ["     ", "     ", "#####", "     ", "#####", "     ", "     "],
    ">": [" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "],
    "<": ["   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "],
    "/": ["     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "],
    "(": ["   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "],
    ")": [" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "],
    "%": ["##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"],
    "_": ["     ", "     ", "     ", "     ", "     ", "     ", "#####"],
    "?": [" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "],
    " ": ["     "] * 7,
}

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (0, 0, 0), (120, 120, 120), (225, 225, 225)


class Canvas:
    def __init__(self, w, h, bg=WHITE):
        self.w, self.h = w, h
        self.px = [bytearray(bytes(bg) * w) for _ in range(h)]

    def rect(self, x0, y0, x1, y1, color):
        """Fills [x0, x1) x [y0, y1), clipped."""
        x0, x1 = max(0, int(x0)), min(self.w, int(x1))
        y0, y1 = max(0, int(y0)), min(self.h, int(y1))
        if x1 <= x0:
            return
        run = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            self.px[y][3 * x0 : 3 * x1] = run

    @staticmethod
    def text_width(s, scale=2):
        return len(s) * 6 * scale - scale

    def text(self, x, y, s, scale=2, color=BLACK, center=False):
        s = str(s).upper()
        if center:
            x -= self.text_width(s, scale) // 2
        for ch in s:
            glyph = _F.get(ch, _F["?"])
            for gy, row in enumerate(glyph):
                for gx, c in enumerate(row):
                    if c == "#":
                        self.rect(x + gx * scale, y + gy * scale, x + (gx + 1) * scale, y + (gy + 1) * scale, color)
            x += 6 * scale

    def png(self):
        raw = b"".join(b"\x00" + bytes(r) for r in self.px)

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def short_number(v):
    """3540000 -> 3.54M, 45210 -> 45.2K, 12.3 -> 12.3, 0.042 -> 0.042."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}K"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def bar_chart(path, title, subtitle, series, panels):
    """Writes a PNG with one panel per metric, one bar per series in each.

    series: [(legend label, short label under the bars, (r, g, b))]
    panels: [{"title": str, "note": str, "bars": [None or (median, min, max) or str per series]}]
    A str instead of numbers is written where the bar would be (e.g. "FAILED").
    """
    pw, margin = 250, 20
    w, h = margin * 2 + pw * len(panels), 430
    c = Canvas(w, h)
    c.text(margin, 14, title, 3)
    c.text(margin, 44, subtitle, 2, GREY)
    # Legend
    lx = margin
    for label, _, color in series:
        c.rect(lx, 70, lx + 16, 86, color)
        c.text(lx + 24, 71, label, 2)
        lx += 24 + c.text_width(label, 2) + 40
    top, base = 140, 350
    for i, p in enumerate(panels):
        x0 = margin + i * pw
        c.text(x0 + pw // 2, 106, p["title"], 2, center=True)
        c.rect(x0 + 10, base, x0 + pw - 10, base + 2, GREY)
        nums = [b for b in p["bars"] if isinstance(b, tuple)]
        vmax = max([b[2] for b in nums] + [b[0] for b in nums] + [1e-12])
        slot = (pw - 20) // len(series)
        for j, (_, label, color) in enumerate(series):
            b = p["bars"][j]
            cx = x0 + 10 + slot * j + slot // 2
            c.text(cx, base + 10, label, 2, center=True)
            if not isinstance(b, tuple):
                c.text(cx, base - 30, b or "N/A", 2, GREY, center=True)
                continue
            med, lo, hi = b
            scale = (base - top) / (vmax * 1.1)
            y = base - med * scale
            c.rect(cx - 28, y, cx + 28, base, color)
            if hi > lo:
                ylo, yhi = base - lo * scale, base - hi * scale
                c.rect(cx - 1, yhi, cx + 1, ylo, BLACK)
                c.rect(cx - 8, yhi, cx + 8, yhi + 2, BLACK)
                c.rect(cx - 8, ylo - 1, cx + 8, ylo + 1, BLACK)
                y = min(y, yhi)
            c.text(cx, y - 20, short_number(med), 2, center=True)
        if p.get("note"):
            c.text(x0 + pw // 2, base + 36, p["note"], 2, GREY, center=True)
    with open(path, "wb") as f:
        f.write(c.png())
