//! Images to input tensors: colour conversion, resizing, normalisation, layout.
//!
//! One image becomes `channels × height × width` floats in the model's layout
//! (`(C, H, W)` for NCHW, `(H, W, C)` for NHWC); a batch stacks them on a first
//! axis, so each image owns one contiguous slice of the batch tensor.

use std::borrow::Cow;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageBuffer, Pixel};
use ndarray::ArrayView2;

use super::spec::{ColorOrder, Layout, ModelSpec, Resize};

/// The resampling filter for every resize: bilinear, antialiased when shrinking.
const FILTER: FilterType = FilterType::Triangle;

/// A resolved spec's preprocessing, ready to apply.
#[derive(Clone, Debug)]
pub(crate) struct Preprocess {
    layout: Layout,
    height: usize,
    width: usize,
    channels: usize,
    resize: Resize,
    /// `table[c][p]`: the input value of 8-bit pixel `p` in model channel `c`,
    /// `(p / scale − mean[c]) / std[c]`, computed once in f32 so that every pixel
    /// goes through exactly the arithmetic the spec states.
    table: Vec<[f32; 256]>,
    /// For each model channel, the channel of the RGB image it reads.
    source_channel: Vec<usize>,
}

impl Preprocess {
    /// Builds the preprocessing of a spec whose fields are all resolved.
    ///
    /// # Panics
    ///
    /// If a field is still `None` or `mean`/`std` are not one value per channel:
    /// the extractor only builds this from a resolved spec.
    pub fn new(spec: &ModelSpec) -> Preprocess {
        let resolved = "Preprocess::new takes a resolved spec";
        let channels = spec.channels.expect(resolved);
        assert!(
            spec.mean.len() == channels && spec.std.len() == channels,
            "{resolved}: mean/std per channel"
        );
        let table = (0..channels)
            .map(|c| {
                let mut row = [0.0f32; 256];
                for (p, value) in row.iter_mut().enumerate() {
                    *value = (p as f32 / spec.scale - spec.mean[c]) / spec.std[c];
                }
                row
            })
            .collect();
        let source_channel = match (channels, spec.color) {
            (1, _) => vec![0],
            (_, ColorOrder::Rgb) => vec![0, 1, 2],
            (_, ColorOrder::Bgr) => vec![2, 1, 0],
        };
        Preprocess {
            layout: spec.layout.expect(resolved),
            height: spec.height.expect(resolved),
            width: spec.width.expect(resolved),
            channels,
            resize: spec.resize,
            table,
            source_channel,
        }
    }

    /// Number of floats one image takes in the input tensor.
    pub fn per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Writes one decoded image into `out` (`per_image()` floats).
    ///
    /// A 1-channel model gets the image's luma (`image`'s `to_luma8`); a
    /// 3-channel model gets RGB, gray replicated. Alpha is dropped.
    ///
    /// # Errors
    ///
    /// A message when the image has no pixels.
    pub fn image_into(&self, image: &DynamicImage, out: &mut [f32]) -> Result<(), String> {
        if image.width() == 0 || image.height() == 0 {
            return Err(format!(
                "image is empty ({}×{})",
                image.width(),
                image.height()
            ));
        }
        if self.channels == 1 {
            let converted;
            let gray = match image {
                DynamicImage::ImageLuma8(gray) => gray,
                other => {
                    converted = other.to_luma8();
                    &converted
                }
            };
            self.write(self.fit(gray).as_raw(), out);
        } else {
            let converted;
            let rgb = match image {
                DynamicImage::ImageRgb8(rgb) => rgb,
                other => {
                    converted = other.to_rgb8();
                    &converted
                }
            };
            self.write(self.fit(rgb).as_raw(), out);
        }
        Ok(())
    }

    /// Writes one raw 8-bit gray image `(h, w)` into `out` (`per_image()` floats).
    ///
    /// # Errors
    ///
    /// A message when the image has no pixels.
    pub fn gray_into(&self, gray: ArrayView2<u8>, out: &mut [f32]) -> Result<(), String> {
        let (h, w) = gray.dim();
        if self.channels == 1
            && (h, w) == (self.height, self.width)
            && let Some(pixels) = gray.as_slice()
        {
            self.write(pixels, out);
            return Ok(());
        }
        let pixels: Vec<u8> = gray.iter().copied().collect();
        let image = GrayImage::from_raw(w as u32, h as u32, pixels)
            .expect("a (h, w) array holds h·w pixels");
        self.image_into(&DynamicImage::ImageLuma8(image), out)
    }

    /// The image at the model's size: borrowed when it already is, else resized
    /// (and centre-cropped for [`Resize::ShorterThenCrop`]).
    fn fit<'a, P>(&self, image: &'a ImageBuffer<P, Vec<u8>>) -> Cow<'a, ImageBuffer<P, Vec<u8>>>
    where
        P: Pixel<Subpixel = u8> + 'static,
    {
        let (width, height) = (self.width as u32, self.height as u32);
        let (image_width, image_height) = image.dimensions();
        let resize_to = |w: u32, h: u32| -> Cow<'a, ImageBuffer<P, Vec<u8>>> {
            if (w, h) == (image_width, image_height) {
                Cow::Borrowed(image)
            } else {
                Cow::Owned(imageops::resize(image, w, h, FILTER))
            }
        };
        match self.resize {
            Resize::Exact => resize_to(width, height),
            Resize::ShorterThenCrop(shorter) => {
                // The longer side is truncated, as torchvision's `Resize(int)` does.
                let scaled = |long: u32, short: u32| {
                    let long = u64::from(shorter) * u64::from(long) / u64::from(short);
                    u32::try_from(long).unwrap_or(u32::MAX)
                };
                let (w, h) = if image_width <= image_height {
                    (shorter, scaled(image_height, image_width))
                } else {
                    (scaled(image_width, image_height), shorter)
                };
                let resized = resize_to(w, h);
                if (w, h) == (width, height) {
                    return resized;
                }
                // `shorter ≥ max(height, width)` was checked when the spec was resolved.
                let left = (f64::from(w.saturating_sub(width)) / 2.0).round() as u32;
                let top = (f64::from(h.saturating_sub(height)) / 2.0).round() as u32;
                Cow::Owned(
                    imageops::crop_imm(resized.as_ref(), left, top, width, height).to_image(),
                )
            }
        }
    }

    /// Writes interleaved 8-bit pixels (`height × width × k`, `k` = 1 or 3
    /// matching the model) into `out` in the model's layout and channel order.
    fn write(&self, pixels: &[u8], out: &mut [f32]) {
        let plane = self.height * self.width;
        let k = self.channels;
        debug_assert_eq!(pixels.len(), plane * k, "pixels at the model's size");
        debug_assert_eq!(out.len(), plane * k, "one image's slice of the tensor");
        for (c, (&source, table)) in self.source_channel.iter().zip(&self.table).enumerate() {
            let values = pixels
                .iter()
                .skip(source)
                .step_by(k)
                .map(|&p| table[p as usize]);
            match self.layout {
                Layout::Nchw => {
                    for (dst, value) in out[c * plane..(c + 1) * plane].iter_mut().zip(values) {
                        *dst = value;
                    }
                }
                Layout::Nhwc => {
                    for (dst, value) in out.iter_mut().skip(c).step_by(k).zip(values) {
                        *dst = value;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use image::{Luma, Rgb, RgbImage};

    use super::*;

    fn spec(text: &str) -> ModelSpec {
        let spec = ModelSpec::from_json(text).expect("valid spec");
        let channels = spec.channels.expect("test specs give channels");
        let per_channel = |v: &[f32]| {
            if v.len() == 1 {
                vec![v[0]; channels]
            } else {
                v.to_vec()
            }
        };
        ModelSpec {
            mean: per_channel(&spec.mean),
            std: per_channel(&spec.std),
            ..spec
        }
    }

    #[test]
    fn gray_normalisation_matches_the_formula() {
        let pre = Preprocess::new(&spec(
            r#"{"layout":"nchw","height":1,"width":3,"channels":1,"mean":[0.2860],"std":[0.3530]}"#,
        ));
        let image =
            DynamicImage::ImageLuma8(GrayImage::from_raw(3, 1, vec![0, 128, 255]).expect("3 px"));
        let mut out = [0.0f32; 3];
        pre.image_into(&image, &mut out).expect("non-empty");
        let expected = [0u8, 128, 255].map(|p| (p as f32 / 255.0 - 0.2860) / 0.3530);
        assert_eq!(out, expected);
        assert!((out[2] - (1.0 - 0.286) / 0.353).abs() < 1e-6);
    }

    #[test]
    fn rgb_with_equal_channels_gives_the_same_luma_for_every_value() {
        let values: Vec<u8> = (0..=255).collect();
        let gray = GrayImage::from_raw(256, 1, values.clone()).expect("256 px");
        let rgb = RgbImage::from_fn(256, 1, |x, _| Rgb([x as u8; 3]));
        let as_gray = DynamicImage::ImageRgb8(rgb).to_luma8();
        assert_eq!(as_gray.as_raw(), gray.as_raw());
    }

    #[test]
    fn bgr_nhwc_caffe_means() {
        let pre = Preprocess::new(&spec(
            r#"{"layout":"nhwc","height":1,"width":2,"channels":3,"color":"bgr","scale":1.0,
                "mean":[103.939,116.779,123.68],"std":[1,1,1]}"#,
        ));
        let rgb = RgbImage::from_raw(2, 1, vec![200, 100, 50, 10, 20, 30]).expect("2 px");
        let mut out = [0.0f32; 6];
        pre.image_into(&DynamicImage::ImageRgb8(rgb), &mut out)
            .expect("non-empty");
        let expected = [
            50.0 - 103.939,
            100.0 - 116.779,
            200.0 - 123.68,
            30.0 - 103.939,
            20.0 - 116.779,
            10.0 - 123.68,
        ];
        for (got, want) in out.iter().zip(expected) {
            assert!((got - want).abs() < 1e-4, "{out:?} vs {expected:?}");
        }
    }

    #[test]
    fn rgb_nchw_planes_and_gray_replicated() {
        let pre = Preprocess::new(&spec(
            r#"{"layout":"nchw","height":1,"width":2,"channels":3,"scale":1.0}"#,
        ));
        let rgb = RgbImage::from_raw(2, 1, vec![1, 2, 3, 4, 5, 6]).expect("2 px");
        let mut out = [0.0f32; 6];
        pre.image_into(&DynamicImage::ImageRgb8(rgb), &mut out)
            .expect("non-empty");
        assert_eq!(out, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);

        let gray = GrayImage::from_raw(2, 1, vec![7, 9]).expect("2 px");
        pre.image_into(&DynamicImage::ImageLuma8(gray), &mut out)
            .expect("non-empty");
        assert_eq!(out, [7.0, 9.0, 7.0, 9.0, 7.0, 9.0]);
    }

    #[test]
    fn exact_resize_of_a_constant_image_keeps_the_value() {
        let pre = Preprocess::new(&spec(
            r#"{"layout":"nchw","height":4,"width":6,"channels":1,"scale":1.0}"#,
        ));
        let image = DynamicImage::ImageLuma8(GrayImage::from_pixel(13, 9, Luma([77])));
        let mut out = vec![0.0f32; pre.per_image()];
        pre.image_into(&image, &mut out).expect("non-empty");
        assert!(out.iter().all(|&v| v == 77.0), "{out:?}");
    }

    #[test]
    fn shorter_side_then_centre_crop() {
        // 8×4 image whose columns hold their x; shorter side 4 needs no resampling,
        // so the centre 2×2 window is columns 3 and 4 exactly.
        let pre = Preprocess::new(&spec(
            r#"{"layout":"nchw","height":2,"width":2,"channels":1,"scale":1.0,
                "resize":{"shorter_then_crop":4}}"#,
        ));
        let image = GrayImage::from_fn(8, 4, |x, _| Luma([x as u8]));
        let mut out = [0.0f32; 4];
        pre.image_into(&DynamicImage::ImageLuma8(image), &mut out)
            .expect("non-empty");
        assert_eq!(out, [3.0, 4.0, 3.0, 4.0]);
    }

    #[test]
    fn raw_gray_arrays_take_the_fast_path_or_the_general_one() {
        let pre = Preprocess::new(&spec(
            r#"{"layout":"nchw","height":2,"width":2,"channels":1,"scale":1.0}"#,
        ));
        let fitting = ndarray::arr2(&[[1u8, 2], [3, 4]]);
        let mut out = [0.0f32; 4];
        pre.gray_into(fitting.view(), &mut out).expect("non-empty");
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);

        // Transposed (not contiguous) still reads row by row.
        pre.gray_into(fitting.t(), &mut out).expect("non-empty");
        assert_eq!(out, [1.0, 3.0, 2.0, 4.0]);

        let empty = ndarray::Array2::<u8>::zeros((0, 3));
        assert!(pre.gray_into(empty.view(), &mut out).is_err());
    }
}
