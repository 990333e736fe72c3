//! A tiny 3×5 pixel font for labelling comparison GIFs (upper-case letters, digits, common
//! punctuation; lower case is drawn as upper case, anything else as '?').

/// Glyph rows top to bottom, three bits each, most significant bit leftmost.
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        'A' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'B' => [0b110, 0b101, 0b110, 0b101, 0b110],
        'C' => [0b011, 0b100, 0b100, 0b100, 0b011],
        'D' => [0b110, 0b101, 0b101, 0b101, 0b110],
        'E' => [0b111, 0b100, 0b110, 0b100, 0b111],
        'F' => [0b111, 0b100, 0b110, 0b100, 0b100],
        'G' => [0b011, 0b100, 0b101, 0b101, 0b011],
        'H' => [0b101, 0b101, 0b111, 0b101, 0b101],
        'I' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'J' => [0b001, 0b001, 0b001, 0b101, 0b010],
        'K' => [0b101, 0b101, 0b110, 0b101, 0b101],
        'L' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'M' => [0b101, 0b111, 0b111, 0b101, 0b101],
        'N' => [0b110, 0b101, 0b101, 0b101, 0b101],
        'O' => [0b010, 0b101, 0b101, 0b101, 0b010],
        'P' => [0b110, 0b101, 0b110, 0b100, 0b100],
        'Q' => [0b010, 0b101, 0b101, 0b110, 0b011],
        'R' => [0b110, 0b101, 0b110, 0b101, 0b101],
        'S' => [0b011, 0b100, 0b010, 0b001, 0b110],
        'T' => [0b111, 0b010, 0b010, 0b010, 0b010],
        'U' => [0b101, 0b101, 0b101, 0b101, 0b111],
        'V' => [0b101, 0b101, 0b101, 0b101, 0b010],
        'W' => [0b101, 0b101, 0b111, 0b111, 0b101],
        'X' => [0b101, 0b101, 0b010, 0b101, 0b101],
        'Y' => [0b101, 0b101, 0b010, 0b010, 0b010],
        'Z' => [0b111, 0b001, 0b010, 0b100, 0b111],
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b110, 0b001, 0b010, 0b100, 0b111],
        '3' => [0b110, 0b001, 0b010, 0b001, 0b110],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b110, 0b001, 0b110],
        '6' => [0b011, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b110],
        ' ' => [0; 5],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '_' => [0b000, 0b000, 0b000, 0b000, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        ',' => [0b000, 0b000, 0b000, 0b010, 0b100],
        ':' => [0b000, 0b010, 0b000, 0b010, 0b000],
        '/' => [0b001, 0b001, 0b010, 0b100, 0b100],
        '(' => [0b010, 0b100, 0b100, 0b100, 0b010],
        ')' => [0b010, 0b001, 0b001, 0b001, 0b010],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        '=' => [0b000, 0b111, 0b000, 0b111, 0b000],
        '|' => [0b010, 0b010, 0b010, 0b010, 0b010],
        '%' => [0b101, 0b001, 0b010, 0b100, 0b101],
        '!' => [0b010, 0b010, 0b010, 0b000, 0b010],
        '\'' => [0b010, 0b010, 0b000, 0b000, 0b000],
        '*' => [0b000, 0b101, 0b010, 0b101, 0b000],
        '<' => [0b001, 0b010, 0b100, 0b010, 0b001],
        '>' => [0b100, 0b010, 0b001, 0b010, 0b100],
        '#' => [0b101, 0b111, 0b101, 0b111, 0b101],
        _ => [0b110, 0b001, 0b010, 0b000, 0b010],
    }
}

/// Height of a line of text in font pixels (glyph rows).
pub(crate) const GLYPH_HEIGHT: usize = 5;
/// Horizontal advance per character in font pixels (3 columns + 1 gap).
pub(crate) const GLYPH_ADVANCE: usize = 4;

/// Where and how to draw text into an 8-bit RGB image.
pub(crate) struct TextStyle {
    /// Size of one font pixel in image pixels.
    pub scale: usize,
    pub color: [u8; 3],
}

/// Draws `text` with its top-left corner at (`x`, `y`) into `image` (`width` pixels per row),
/// clipping whatever falls outside the columns `x..x_end` or below the image.
pub(crate) fn draw_text(
    image: &mut [u8],
    width: usize,
    (x, y): (usize, usize),
    x_end: usize,
    text: &str,
    style: &TextStyle,
) {
    let height = image.len() / (3 * width.max(1));
    let x_end = x_end.min(width);
    for (i, c) in text.chars().enumerate() {
        let gx = x + i * GLYPH_ADVANCE * style.scale;
        if gx >= x_end {
            break;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) == 0 {
                    continue;
                }
                for dy in 0..style.scale {
                    let py = y + row * style.scale + dy;
                    for dx in 0..style.scale {
                        let px = gx + col * style.scale + dx;
                        if px < x_end && py < height {
                            image[(py * width + px) * 3..][..3].copy_from_slice(&style.color);
                        }
                    }
                }
            }
        }
    }
}
