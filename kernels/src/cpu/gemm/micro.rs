//! What the blocked driver needs to know about a register-tiled micro-kernel.

use super::pack::PanelPacker;

/// Computes one tile `C[0..R, 0..nr] = alpha · Ã·B̃ + beta · C (+ bias)` from packed panels: `a` holds `kc`
/// steps of `mr` values (rows of op(A) at one k), `b` holds `kc` steps of `nr` values (columns of
/// op(B) at one k). `R` is fixed by the instance (see [`MicroKernel::tiles`]). With `beta == 0`,
/// `C` is not read. A non-null `bias` (`nr` values) is added to every row.
///
/// # Safety
/// `a` must be valid for `kc·mr` reads, `b` for `kc·nr` reads, `c` for `R` rows of `nr` values
/// with row stride `ldc`, `bias` null or valid for `nr` reads, and the CPU must support the
/// instance's target features.
pub(super) type TileFn = unsafe fn(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
);

/// [`TileFn`] reading A unpacked: row `i` of the tile at `a + i·lda`, contiguous along k (op(A)
/// row-major). Saves packing A when A is already laid out this way.
///
/// # Safety
/// As [`TileFn`], with `a` valid for reads of `R` rows of `kc` values at row stride `lda`.
pub(super) type DirectTileFn = unsafe fn(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
);

/// A micro-kernel with its register tile and the cache blocking that suits it.
pub(super) struct MicroKernel {
    /// Rows of C per tile (A panel width).
    pub mr: usize,
    /// Columns of C per tile (B panel width).
    pub nr: usize,
    /// Rows of A packed at once: `mc·kc` floats stay in L2 while every B panel streams past.
    pub mc: usize,
    /// Depth of one packed block: one `kc·nr` B panel stays in L1 while the A panels stream.
    pub kc: usize,
    /// Columns of B packed at once (`kc·nc` floats, in L2/L3).
    pub nc: usize,
    /// `tiles[r - 1]` computes a tile of `r` rows, so ragged bottom tiles cost only what they use.
    pub tiles: &'static [TileFn],
    /// `direct_tiles[r - 1]`: as `tiles`, reading a row-major A in place; empty if the kernel
    /// has none (A is then always packed).
    pub direct_tiles: &'static [DirectTileFn],
    /// A variant with a narrower tile for products with at most its `nr` columns.
    pub narrow: Option<&'static MicroKernel>,
    /// Packs A and B panels for this kernel.
    pub pack: PanelPacker,
}
