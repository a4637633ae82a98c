//! Data and kernel layouts of spatial ops.
//!
//! Readers record the layout the source uses (ONNX: NCHW / OIHW; Keras and TF: NHWC / HWIO)
//! and insert no transposes; writers legalize to their own layout.

use std::fmt;

/// Where the channel axis of a spatial activation sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Channels first: `[N, C, spatial...]`.
    Nchw,
    /// Channels last: `[N, spatial..., C]`.
    Nhwc,
}

impl Layout {
    pub fn channel_axis(self, rank: usize) -> usize {
        match self {
            Layout::Nchw => 1,
            Layout::Nhwc => rank - 1,
        }
    }
    /// Axes of the spatial dimensions for a tensor of `rank`.
    pub fn spatial_axes(self, rank: usize) -> std::ops::Range<usize> {
        match self {
            Layout::Nchw => 2..rank,
            Layout::Nhwc => 1..rank - 1,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        })
    }
}

/// Layout of a convolution kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelLayout {
    /// `[out, in/groups, spatial...]` (ONNX Conv).
    Oihw,
    /// `[in, out/groups, spatial...]` (ONNX ConvTranspose).
    Iohw,
    /// `[spatial..., in/groups, out]` (TF, Keras).
    Hwio,
    /// `[out, spatial..., in/groups]` (TFLite CONV_2D).
    Ohwi,
    /// `[in/groups, spatial..., out]`: TFLite DEPTHWISE_CONV_2D's `[1, H, W, C·multiplier]`.
    Ihwo,
    /// `[spatial..., out/groups, in]` (TF Conv2DBackpropInput / Keras Conv2DTranspose: the
    /// filter of the forward convolution whose gradient the transposed convolution computes).
    Hwoi,
}

impl KernelLayout {
    /// The spatial axes of a rank-`rank` kernel in this layout (out, in and the spatial axes;
    /// empty below rank 3, so the range always indexes a shape of that rank).
    pub fn spatial_axes(self, rank: usize) -> std::ops::Range<usize> {
        let (start, end) = match self {
            KernelLayout::Oihw | KernelLayout::Iohw => (2, rank),
            KernelLayout::Hwio | KernelLayout::Hwoi => (0, rank.saturating_sub(2)),
            KernelLayout::Ohwi | KernelLayout::Ihwo => (1, rank.saturating_sub(1)),
        };
        match rank >= 3 {
            true => start..end,
            false => 0..0,
        }
    }
}

impl fmt::Display for KernelLayout {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            KernelLayout::Oihw => "oihw",
            KernelLayout::Iohw => "iohw",
            KernelLayout::Hwio => "hwio",
            KernelLayout::Ohwi => "ohwi",
            KernelLayout::Hwoi => "hwoi",
            KernelLayout::Ihwo => "ihwo",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::KernelLayout as K;

    #[test]
    fn spatial_axes_follow_each_layout() {
        // A 2-D kernel: the two spatial axes where each layout's letters put them.
        for (k, want) in [
            (K::Oihw, 2..4),
            (K::Iohw, 2..4),
            (K::Hwio, 0..2),
            (K::Hwoi, 0..2),
            (K::Ohwi, 1..3),
            (K::Ihwo, 1..3),
        ] {
            assert_eq!(k.spatial_axes(4), want, "{k}");
        }
        assert_eq!(K::Ohwi.spatial_axes(5), 1..4);
        assert_eq!(K::Hwio.spatial_axes(3), 0..1);
        // Below rank 3 there is no spatial axis (and the range still indexes the shape).
        assert!(K::Oihw.spatial_axes(2).is_empty() && K::Ohwi.spatial_axes(0).is_empty());
    }
}
