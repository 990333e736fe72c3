//! Packing: copies a block of op(A) or op(B) into the panel layout the micro-kernels read, so that
//! the kernel's loads are contiguous and aligned, whatever the transposes and leading dimensions.

/// A read-only strided matrix view: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
/// One of the two strides is 1 (row-major storage, possibly transposed).
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Operand<'a> {
    /// The view starting at element `(r, c)`.
    pub fn offset(self, r: usize, c: usize) -> Operand<'a> {
        Operand {
            data: &self.data[r * self.row_stride + c * self.col_stride..],
            ..self
        }
    }

    /// The transposed view.
    pub fn t(self) -> Operand<'a> {
        Operand {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// Packs `lines` (≤ `width`) rows of `src`, `depth` columns each, into panels of `width` rows:
/// `dst[p·depth·width + k·width + x] = src(p·width + x, k)`. Rows past `lines` in the last panel
/// are zero so the kernel can always run over the full panel width.
///
/// For A, `src` is op(A) (rows = m, columns = k); for B it is op(B)ᵀ (rows = n, columns = k).
///
/// # Safety
/// The CPU must support the target features `pack_panel` was compiled for.
pub(super) unsafe fn pack_panels(
    src: Operand,
    lines: usize,
    depth: usize,
    width: usize,
    dst: &mut [f32],
    pack_panel: PanelPacker,
) {
    for (p, panel) in dst[..lines.div_ceil(width) * width * depth]
        .chunks_exact_mut(width * depth)
        .enumerate()
    {
        let x0 = p * width;
        let used = width.min(lines - x0);
        pack_panel(src.offset(x0, 0), used, depth, width, panel);
    }
}

/// Packs one panel: `panel[k·width + x] = src(x, k)` for `x < used`, zero for `used ≤ x < width`.
///
/// # Safety
/// The CPU must support the implementation's target features. (Slice bounds are checked.)
pub(super) type PanelPacker =
    unsafe fn(src: Operand, used: usize, depth: usize, width: usize, panel: &mut [f32]);

/// Portable [`PanelPacker`].
pub(super) fn pack_panel(src: Operand, used: usize, depth: usize, width: usize, panel: &mut [f32]) {
    if src.row_stride == 1 {
        // The panel's lines are adjacent in memory: one contiguous copy per k.
        for (k, dst_k) in panel.chunks_exact_mut(width).enumerate() {
            let start = k * src.col_stride;
            dst_k[..used].copy_from_slice(&src.data[start..start + used]);
            dst_k[used..].fill(0.0);
        }
    } else {
        // Each line is contiguous along k: transpose it into the panel, one line at a time.
        debug_assert_eq!(src.col_stride, 1);
        for x in 0..used {
            let start = x * src.row_stride;
            let line = &src.data[start..start + depth];
            for (dst_k, &v) in panel.chunks_exact_mut(width).zip(line) {
                dst_k[x] = v;
            }
        }
        if used < width {
            for dst_k in panel.chunks_exact_mut(width) {
                dst_k[used..].fill(0.0);
            }
        }
    }
}
