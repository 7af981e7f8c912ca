//! The model spec: what the graph's input looks like, how images become that
//! input, and which output is the feature vector.
//!
//! Stored as JSON beside the model (`models/fashion-vgg.onnx` → `models/fashion-vgg.json`).
//! Fields left `null` are read from the graph when the model is opened.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Memory layout of the model's rank-4 image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `(n_batch, channels, height, width)`, as PyTorch exports.
    Nchw,
    /// `(n_batch, height, width, channels)`, as Keras/TensorFlow exports.
    Nhwc,
}

/// How an image is brought to the model's input size.
///
/// Both use `image`'s `Triangle` filter (bilinear, antialiased when shrinking);
/// an image already at the target size is not resampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Resize to exactly `height × width`, ignoring the aspect ratio.
    #[default]
    Exact,
    /// Resize so that the shorter side is this many pixels (keeping the aspect
    /// ratio, the longer side truncated as torchvision does), then cut the
    /// centre `height × width` window.
    ShorterThenCrop(u32),
}

/// Channel order the model expects for 3-channel input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    /// Red, green, blue (torchvision, most PyTorch exports).
    #[default]
    Rgb,
    /// Blue, green, red (Keras `preprocess_input` in Caffe mode, Caffe models).
    Bgr,
}

/// How to feed a model and read its features; see the module docs.
///
/// Preprocessing of an 8-bit pixel `p` in model channel `c` (channels in the
/// model's order, so for a BGR model `mean[0]` is the blue mean):
/// `value = (p / scale − mean[c]) / std[c]`. `mean` and `std` hold one value
/// for all channels or one per channel.
///
/// ```
/// use continual::extract::ModelSpec;
///
/// let spec = ModelSpec::from_json(r#"{"height": 28, "width": 28, "channels": 1,
///     "mean": [0.2860], "std": [0.3530]}"#)?;
/// assert_eq!(spec.scale, 255.0);
/// assert_eq!(spec.input, None); // the model's only input
/// # Ok::<(), continual::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name of the image input; `None`: the model's only input.
    #[serde(default)]
    pub input: Option<String>,
    /// Name of the feature output; `None`: the model's first output.
    #[serde(default)]
    pub output: Option<String>,
    /// Input layout; `None`: detected from the graph (the axis of size 1 or 3
    /// among axes 1 and 3).
    #[serde(default)]
    pub layout: Option<Layout>,
    /// Input height in pixels; `None`: from the graph.
    #[serde(default)]
    pub height: Option<usize>,
    /// Input width in pixels; `None`: from the graph.
    #[serde(default)]
    pub width: Option<usize>,
    /// Input channels, 1 (gray) or 3 (colour); `None`: from the graph.
    #[serde(default)]
    pub channels: Option<usize>,
    /// How images are brought to `height × width`.
    #[serde(default)]
    pub resize: Resize,
    /// Channel order of 3-channel input.
    #[serde(default)]
    pub color: ColorOrder,
    /// Pixels are divided by this first: 255 for `[0, 1]`, 1 for raw `[0, 255]`.
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// Subtracted after scaling; one value, or one per channel in model order.
    #[serde(default = "default_mean")]
    pub mean: Vec<f32>,
    /// Divided by after subtracting the mean; one value, or one per channel.
    #[serde(default = "default_std")]
    pub std: Vec<f32>,
}

fn default_scale() -> f32 {
    255.0
}

fn default_mean() -> Vec<f32> {
    vec![0.0]
}

fn default_std() -> Vec<f32> {
    vec![1.0]
}

/// Names accepted by [`ModelSpec::preset`].
pub const PRESETS: &[&str] = &["torchvision-vgg16", "keras-vgg16"];

impl ModelSpec {
    /// A spec for a common VGG16 export, by name (see [`PRESETS`]).
    ///
    /// - `torchvision-vgg16`: NCHW 224×224 RGB, shorter side to 256 then centre
    ///   crop, scaled to `[0, 1]`, ImageNet mean/std; the feature is the graph's
    ///   first output (the 4096-d fc7 activation for a model exported by
    ///   `models/export_vgg16.py`).
    /// - `keras-vgg16`: NHWC 224×224 BGR, exact resize, Caffe-style mean
    ///   subtraction on `[0, 255]` pixels; the graph's first output.
    pub fn preset(name: &str) -> Option<ModelSpec> {
        match name {
            "torchvision-vgg16" => Some(ModelSpec {
                input: None,
                output: None,
                layout: Some(Layout::Nchw),
                height: Some(224),
                width: Some(224),
                channels: Some(3),
                resize: Resize::ShorterThenCrop(256),
                color: ColorOrder::Rgb,
                scale: 255.0,
                mean: vec![0.485, 0.456, 0.406],
                std: vec![0.229, 0.224, 0.225],
            }),
            "keras-vgg16" => Some(ModelSpec {
                input: None,
                output: None,
                layout: Some(Layout::Nhwc),
                height: Some(224),
                width: Some(224),
                channels: Some(3),
                resize: Resize::Exact,
                color: ColorOrder::Bgr,
                scale: 1.0,
                mean: vec![103.939, 116.779, 123.68],
                std: vec![1.0, 1.0, 1.0],
            }),
            _ => None,
        }
    }

    /// Parses a spec from JSON text and checks its values.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] on malformed JSON, unknown fields, or values out of
    /// range (see [`ModelSpec::validate`]).
    pub fn from_json(text: &str) -> Result<ModelSpec> {
        let spec: ModelSpec =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("model spec: {e}")))?;
        spec.validate()
            .map_err(|reason| Error::Config(format!("model spec: {reason}")))?;
        Ok(spec)
    }

    /// Reads a spec from a JSON file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Model`] naming the
    /// file when its content is not a valid spec.
    pub fn from_json_file(path: &Path) -> Result<ModelSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: ModelSpec = serde_json::from_str(&text).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            reason: format!("not a valid model spec: {e}"),
        })?;
        spec.validate().map_err(|reason| Error::Model {
            path: path.to_path_buf(),
            reason: format!("invalid model spec: {reason}"),
        })?;
        Ok(spec)
    }

    /// The spec as pretty-printed JSON (the format [`ModelSpec::from_json`] reads).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).expect("a model spec serialises to JSON")
    }

    /// Checks the values that do not depend on the graph.
    ///
    /// # Errors
    ///
    /// A message naming the first bad field: `channels` other than 1 or 3, a zero
    /// size, a non-positive or non-finite `scale`, `mean`/`std` of the wrong
    /// length, a zero or non-finite `std`, a crop larger than its resize.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(c) = self.channels
            && c != 1
            && c != 3
        {
            return Err(format!("channels must be 1 or 3, not {c}"));
        }
        for (name, size) in [("height", self.height), ("width", self.width)] {
            if size == Some(0) {
                return Err(format!("{name} must be positive"));
            }
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("scale must be positive, not {}", self.scale));
        }
        for (name, values) in [("mean", &self.mean), ("std", &self.std)] {
            let fits = match self.channels {
                Some(c) => values.len() == 1 || values.len() == c,
                None => values.len() == 1 || values.len() == 3,
            };
            if !fits {
                return Err(format!(
                    "{name} must have 1 value or one per channel, not {}",
                    values.len()
                ));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("{name} must be finite: {values:?}"));
            }
        }
        if self.std.contains(&0.0) {
            return Err(format!("std must not be zero: {:?}", self.std));
        }
        if let Resize::ShorterThenCrop(shorter) = self.resize {
            let crop = self.height.unwrap_or(0).max(self.width.unwrap_or(0));
            if (shorter as usize) < crop {
                return Err(format!(
                    "shorter_then_crop {shorter} is smaller than the {crop}-pixel crop"
                ));
            }
            if shorter == 0 {
                return Err("shorter_then_crop must be positive".into());
            }
        }
        Ok(())
    }
}

/// One input or output of a graph as ONNX Runtime describes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TensorInfo {
    pub name: String,
    /// Element type, as ONNX Runtime names it (`"f32"`), or `None` for a non-tensor.
    pub element: Option<String>,
    /// Dimensions; `-1` where the graph leaves a dimension dynamic.
    pub shape: Vec<i64>,
}

/// The facts about a graph that feeding it needs, checked against the spec.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Geometry {
    pub input: String,
    pub output: String,
    pub layout: Layout,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// The input's batch dimension when the graph fixes it.
    pub fixed_batch: Option<usize>,
    /// The feature dimension when the graph fixes all of the output's other axes.
    pub dim: Option<usize>,
}

impl Geometry {
    /// The shape of one image in the input, without the batch axis.
    pub fn image_shape(&self) -> [usize; 3] {
        match self.layout {
            Layout::Nchw => [self.channels, self.height, self.width],
            Layout::Nhwc => [self.height, self.width, self.channels],
        }
    }
}

fn fixed(dim: i64) -> Option<usize> {
    usize::try_from(dim).ok()
}

impl ModelSpec {
    /// Checks this spec against a graph's inputs and outputs and fills every
    /// `None` from the graph. Returns the resolved spec (no `None` left, `mean`
    /// and `std` one value per channel) and the geometry.
    ///
    /// # Errors
    ///
    /// A message saying what does not fit: several inputs, a missing name, an
    /// input that is not a rank-4 f32 tensor, a channel count other than 1 or 3,
    /// sizes that contradict the graph, an output that is not one vector per image.
    pub(crate) fn resolve(
        &self,
        inputs: &[TensorInfo],
        outputs: &[TensorInfo],
    ) -> std::result::Result<(ModelSpec, Geometry), String> {
        self.validate()?;
        let names = |list: &[TensorInfo]| -> String {
            list.iter()
                .map(|t| format!("`{}`", t.name))
                .collect::<Vec<_>>()
                .join(", ")
        };

        // The input.
        if inputs.len() != 1 {
            return Err(format!(
                "the model has {} inputs ({}); only a model with one image input can be fed",
                inputs.len(),
                names(inputs)
            ));
        }
        let input = &inputs[0];
        if let Some(name) = &self.input
            && name != &input.name
        {
            return Err(format!(
                "the spec names input `{name}`, but the model's input is `{}`",
                input.name
            ));
        }
        if input.element.as_deref() != Some("f32") {
            return Err(format!(
                "input `{}` is {}, not a float32 tensor",
                input.name,
                input.element.as_deref().unwrap_or("not a tensor")
            ));
        }
        let shape = &input.shape;
        if shape.len() != 4 {
            return Err(format!(
                "input `{}` has shape {shape:?} (rank {}); an image model takes a rank-4 input, \
                 (N, C, H, W) or (N, H, W, C)",
                input.name,
                shape.len()
            ));
        }

        let layout = match self.layout {
            Some(layout) => layout,
            None => detect_layout(shape).ok_or_else(|| {
                format!(
                    "cannot tell the layout of input `{}` with shape {shape:?}; \
                     set \"layout\" (\"nchw\" or \"nhwc\") in the spec",
                    input.name
                )
            })?,
        };
        let (c_axis, h_axis, w_axis) = match layout {
            Layout::Nchw => (1, 2, 3),
            Layout::Nhwc => (3, 1, 2),
        };

        let pick = |what: &str,
                    axis: usize,
                    spec: Option<usize>|
         -> std::result::Result<usize, String> {
            match (fixed(shape[axis]), spec) {
                (Some(graph), Some(spec)) if graph != spec => Err(format!(
                    "input `{}` has {what} {graph} (shape {shape:?}, {layout:?}), \
                     but the spec says {spec}",
                    input.name
                )),
                (Some(graph), _) => Ok(graph),
                (None, Some(spec)) => Ok(spec),
                (None, None) => Err(format!(
                    "input `{}` leaves {what} dynamic (shape {shape:?}); set \"{what}\" in the spec",
                    input.name
                )),
            }
        };
        let channels = pick("channels", c_axis, self.channels)?;
        let height = pick("height", h_axis, self.height)?;
        let width = pick("width", w_axis, self.width)?;
        if channels != 1 && channels != 3 {
            return Err(format!(
                "input `{}` has {channels} channels (shape {shape:?}, {layout:?}); \
                 only 1 (gray) or 3 (colour) can be fed",
                input.name
            ));
        }
        for (name, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != 1 && values.len() != channels {
                return Err(format!(
                    "the spec's {name} has {} values for a {channels}-channel input",
                    values.len()
                ));
            }
        }
        if let Resize::ShorterThenCrop(shorter) = self.resize
            && (shorter as usize) < height.max(width)
        {
            return Err(format!(
                "shorter_then_crop {shorter} is smaller than the {height}×{width} input"
            ));
        }
        let fixed_batch = fixed(shape[0]);
        if fixed_batch == Some(0) {
            return Err(format!("input `{}` has a batch size of 0", input.name));
        }

        // The output.
        let output = match &self.output {
            Some(name) => outputs.iter().find(|o| &o.name == name).ok_or_else(|| {
                format!(
                    "the spec names output `{name}`, but the model's outputs are {}",
                    names(outputs)
                )
            })?,
            None => outputs
                .first()
                .ok_or_else(|| "the model has no outputs".to_string())?,
        };
        if output.element.as_deref() != Some("f32") {
            return Err(format!(
                "output `{}` is {}, not a float32 tensor",
                output.name,
                output.element.as_deref().unwrap_or("not a tensor")
            ));
        }
        let out_shape = &output.shape;
        if out_shape.len() < 2 {
            return Err(format!(
                "output `{}` has shape {out_shape:?}: not one feature vector per image \
                 (expected (N, d) or (N, ...))",
                output.name
            ));
        }
        match (fixed(out_shape[0]), fixed_batch) {
            (None, _) => {}
            (Some(out), Some(batch)) if out == batch => {}
            (Some(out), _) => {
                return Err(format!(
                    "output `{}` has shape {out_shape:?}: its first axis ({out}) is not the \
                     batch of input `{}` {shape:?}",
                    output.name, input.name
                ));
            }
        }
        let dim = out_shape[1..]
            .iter()
            .try_fold(1usize, |acc, &d| fixed(d).map(|d| acc * d));
        if dim == Some(0) {
            return Err(format!(
                "output `{}` has shape {out_shape:?}: an empty feature vector",
                output.name
            ));
        }

        let per_channel = |values: &[f32]| -> Vec<f32> {
            if values.len() == channels {
                values.to_vec()
            } else {
                vec![values[0]; channels]
            }
        };
        let resolved = ModelSpec {
            input: Some(input.name.clone()),
            output: Some(output.name.clone()),
            layout: Some(layout),
            height: Some(height),
            width: Some(width),
            channels: Some(channels),
            resize: self.resize,
            color: self.color,
            scale: self.scale,
            mean: per_channel(&self.mean),
            std: per_channel(&self.std),
        };
        let geometry = Geometry {
            input: input.name.clone(),
            output: output.name.clone(),
            layout,
            height,
            width,
            channels,
            fixed_batch,
            dim,
        };
        Ok((resolved, geometry))
    }
}

/// The layout of a rank-4 shape: the axis holding 1 or 3 channels among axes 1
/// and 3, when exactly one of them does.
fn detect_layout(shape: &[i64]) -> Option<Layout> {
    let is_channels = |d: i64| d == 1 || d == 3;
    match (is_channels(shape[1]), is_channels(shape[3])) {
        (true, false) => Some(Layout::Nchw),
        (false, true) => Some(Layout::Nhwc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[i64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            element: Some("f32".into()),
            shape: shape.to_vec(),
        }
    }

    fn open_spec() -> ModelSpec {
        ModelSpec::from_json("{}").expect("an empty spec is valid")
    }

    #[test]
    fn json_round_trip_and_schema() {
        let text = r#"{"input":"image","output":"features","layout":"nchw","height":28,
            "width":28,"channels":1,"resize":"exact","color":"rgb","scale":255.0,
            "mean":[0.2860],"std":[0.3530]}"#;
        let spec = ModelSpec::from_json(text).expect("valid spec");
        assert_eq!(spec.layout, Some(Layout::Nchw));
        assert_eq!(spec.mean, vec![0.286]);
        assert_eq!(
            ModelSpec::from_json(&spec.to_json()).expect("round trip"),
            spec
        );

        let crop = ModelSpec::from_json(r#"{"resize":{"shorter_then_crop":256},"height":224}"#)
            .expect("valid spec");
        assert_eq!(crop.resize, Resize::ShorterThenCrop(256));
        assert!(crop.to_json().contains("\"shorter_then_crop\": 256"));
    }

    #[test]
    fn presets_are_valid_and_round_trip() {
        for name in PRESETS {
            let spec = ModelSpec::preset(name).expect("listed preset exists");
            spec.validate().expect("preset is valid");
            assert_eq!(ModelSpec::from_json(&spec.to_json()).expect("parses"), spec);
        }
        assert_eq!(ModelSpec::preset("resnet"), None);
        let keras = ModelSpec::preset("keras-vgg16").expect("exists");
        assert_eq!(keras.color, ColorOrder::Bgr);
        assert_eq!(keras.mean, vec![103.939, 116.779, 123.68]);
    }

    #[test]
    fn bad_values_are_refused_with_the_field_name() {
        for (text, field) in [
            (r#"{"channels":2}"#, "channels"),
            (r#"{"scale":0}"#, "scale"),
            (r#"{"std":[0.5, 0.0, 1.0]}"#, "std"),
            (r#"{"mean":[1, 2]}"#, "mean"),
            (
                r#"{"height":224,"resize":{"shorter_then_crop":200}}"#,
                "shorter_then_crop",
            ),
            (r#"{"heigth":224}"#, "heigth"),
        ] {
            let err = ModelSpec::from_json(text).expect_err(text).to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn nchw_gray_fills_everything_from_the_graph() {
        let (spec, geometry) = open_spec()
            .resolve(
                &[tensor("image", &[-1, 1, 28, 28])],
                &[tensor("features", &[-1, 256])],
            )
            .expect("fits");
        assert_eq!(geometry.layout, Layout::Nchw);
        assert_eq!(
            (geometry.channels, geometry.height, geometry.width),
            (1, 28, 28)
        );
        assert_eq!(geometry.image_shape(), [1, 28, 28]);
        assert_eq!((geometry.fixed_batch, geometry.dim), (None, Some(256)));
        assert_eq!(spec.input.as_deref(), Some("image"));
        assert_eq!(spec.output.as_deref(), Some("features"));
        assert_eq!(spec.channels, Some(1));
    }

    #[test]
    fn nhwc_is_detected_and_mean_broadcast_per_channel() {
        let spec = ModelSpec {
            mean: vec![0.5],
            ..open_spec()
        };
        let (resolved, geometry) = spec
            .resolve(
                &[tensor("x", &[1, 224, 224, 3])],
                &[tensor("y", &[1, 512, 7, 7])],
            )
            .expect("fits");
        assert_eq!(geometry.layout, Layout::Nhwc);
        assert_eq!(geometry.image_shape(), [224, 224, 3]);
        assert_eq!(
            (geometry.fixed_batch, geometry.dim),
            (Some(1), Some(512 * 49))
        );
        assert_eq!(resolved.mean, vec![0.5; 3]);
    }

    #[test]
    fn graph_and_spec_must_agree() {
        let cases: &[(ModelSpec, &[i64], &[i64], &str)] = &[
            (open_spec(), &[-1, 784], &[-1, 10], "rank-4"),
            (
                ModelSpec {
                    channels: Some(3),
                    ..open_spec()
                },
                &[-1, 1, 28, 28],
                &[-1, 10],
                "channels 1",
            ),
            (open_spec(), &[-1, 4, 28, 28], &[-1, 10], "layout"),
            (
                ModelSpec {
                    layout: Some(Layout::Nchw),
                    ..open_spec()
                },
                &[-1, 4, 28, 28],
                &[-1, 10],
                "4 channels",
            ),
            (
                ModelSpec {
                    height: Some(32),
                    ..open_spec()
                },
                &[-1, 1, 28, 28],
                &[-1, 10],
                "height 28",
            ),
            (open_spec(), &[-1, 3, -1, -1], &[-1, 10], "\"height\""),
            (open_spec(), &[-1, 1, 28, 28], &[], "not one feature vector"),
            (
                open_spec(),
                &[-1, 1, 28, 28],
                &[-1],
                "not one feature vector",
            ),
            (open_spec(), &[-1, 1, 28, 28], &[1, 10], "not the batch"),
            (
                ModelSpec {
                    output: Some("fc7".into()),
                    ..open_spec()
                },
                &[-1, 1, 28, 28],
                &[-1, 10],
                "`fc7`",
            ),
        ];
        for (spec, input, output, needle) in cases {
            let err = spec
                .resolve(&[tensor("x", input)], &[tensor("y", output)])
                .expect_err(needle);
            assert!(err.contains(needle), "{input:?} -> {output:?}: {err}");
        }
    }

    #[test]
    fn dynamic_feature_axes_leave_dim_open() {
        let (_, geometry) = open_spec()
            .resolve(&[tensor("x", &[-1, 1, 28, 28])], &[tensor("y", &[-1, -1])])
            .expect("fits");
        assert_eq!(geometry.dim, None);
    }
}
