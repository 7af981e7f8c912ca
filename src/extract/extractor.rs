//! [`Extractor`]: an ONNX Runtime session plus the spec that feeds it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::DynamicImage;
use ndarray::{Array2, Array4, ArrayView3, ArrayView4, Axis, CowArray, Ix4, s};
use ort::environment::Environment;
use ort::ep;
use ort::session::Session;
use ort::value::TensorRef;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::preprocess::Preprocess;
use super::runtime;
use super::spec::{Geometry, ModelSpec, TensorInfo};
use crate::{Error, Result};

/// Where inference runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on the given GPU; needs the CUDA build of
    /// ONNX Runtime (`scripts/setup.sh --gpu`).
    Cuda {
        /// CUDA device ordinal.
        device_id: i32,
    },
}

/// How to open an [`Extractor`].
#[derive(Clone, Debug)]
pub struct ExtractorOptions {
    /// The ONNX Runtime library to load; `None`: `ORT_DYLIB_PATH`, then the copy
    /// `scripts/setup.sh` installs.
    pub runtime_library: Option<PathBuf>,
    /// Where inference runs.
    pub device: Device,
    /// When the requested device cannot be used: `true` fails, `false` (the
    /// default) warns once and runs on the CPU.
    pub require_device: bool,
    /// Threads ONNX Runtime uses inside one operator; `None`: its default (one per
    /// physical core).
    pub intra_threads: Option<usize>,
    /// Images per inference call (at least 1; default 64). A model with a fixed
    /// batch size runs in batches of that size instead.
    pub batch_size: usize,
    /// In [`Extractor::extract_files`], skip files that cannot be decoded (with
    /// one warning and a count) instead of failing.
    pub skip_bad_images: bool,
}

impl Default for ExtractorOptions {
    fn default() -> Self {
        ExtractorOptions {
            runtime_library: None,
            device: Device::Cpu,
            require_device: false,
            intra_threads: None,
            batch_size: 64,
            skip_bad_images: false,
        }
    }
}

/// Features of a list of image files; see [`Extractor::extract_files`].
#[derive(Clone, Debug)]
pub struct FileFeatures {
    /// `features: (n_kept, dim)`, row `i` for `paths[kept[i]]`.
    pub features: Array2<f32>,
    /// Indices into the given paths of the files that were extracted, ascending.
    pub kept: Vec<usize>,
    /// Files that could not be decoded, with the reason (only with
    /// [`ExtractorOptions::skip_bad_images`]).
    pub skipped: Vec<(PathBuf, String)>,
}

/// A frozen ONNX model that turns images into feature vectors.
///
/// `features: (n_images, dim)`, one row per image, in input order; the model's
/// chosen output flattened per image.
///
/// An `Extractor` owns its ONNX Runtime session, which runs one call at a time
/// (`extract_*` take `&mut self`). It is `Send`, so it can move to a worker
/// thread; to share one between threads, wrap it in a `Mutex`. Images are decoded
/// and preprocessed in parallel on rayon's pool; inference uses ONNX Runtime's
/// own threads ([`ExtractorOptions::intra_threads`]).
///
/// ```no_run
/// use continual::extract::{Extractor, ExtractorOptions};
///
/// // Reads models/fashion-vgg.json beside the model for the preprocessing.
/// let mut extractor = Extractor::open("models/fashion-vgg.onnx", None, ExtractorOptions::default())?;
/// let images = ndarray::Array3::<u8>::zeros((2, 28, 28));
/// let features = extractor.extract_gray(images.view())?;
/// assert_eq!(features.dim(), (2, extractor.dim()));
/// # Ok::<(), continual::Error>(())
/// ```
pub struct Extractor {
    session: Session,
    geometry: Geometry,
    spec: ModelSpec,
    preprocess: Preprocess,
    provider: &'static str,
    dim: usize,
    model_path: PathBuf,
    model_sha256: String,
    batch_size: usize,
    skip_bad_images: bool,
    /// Whether [`Extractor::extract_files`] decodes the next chunk while the
    /// model runs (see there).
    overlap_decoding: bool,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("model_path", &self.model_path)
            .field("provider", &self.provider)
            .field("dim", &self.dim)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Files decoded and preprocessed together before inference, at least: keeps
/// all cores busy decoding even with a small `batch_size`.
const MIN_DECODE_CHUNK: usize = 32;

impl Extractor {
    /// Opens `model` with `spec`, or with the spec stored beside it
    /// (`<model stem>.json`) when `spec` is `None`.
    ///
    /// Loads ONNX Runtime on first use (see [`ExtractorOptions::runtime_library`]),
    /// checks the graph against the spec, and logs the provider in use.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when the model file cannot be read (e.g. does not exist).
    /// - [`Error::Model`] naming the model when there is no spec beside it, when
    ///   ONNX Runtime cannot load it, or when the graph does not fit the spec (input
    ///   not rank 4, channels other than 1 or 3, sizes that disagree, an output that
    ///   is not one vector per image).
    /// - [`Error::Runtime`] when no ONNX Runtime library is found or it cannot be
    ///   loaded, and when CUDA is requested with `require_device` but unavailable.
    /// - [`Error::Config`] for a zero `batch_size`.
    pub fn open(
        model: impl AsRef<Path>,
        spec: Option<ModelSpec>,
        options: ExtractorOptions,
    ) -> Result<Extractor> {
        let model = model.as_ref();
        if options.batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        let model_sha256 = sha256_file(model)?;
        let spec = match spec {
            Some(spec) => spec,
            None => spec_beside(model)?,
        };

        let want_cuda = matches!(options.device, Device::Cuda { .. });
        let (environment, library) =
            runtime::environment(options.runtime_library.as_deref(), want_cuda)?;
        let (session, provider) = create_session(&environment, &library, model, &options)?;

        let inputs = session.inputs().iter().map(tensor_info).collect::<Vec<_>>();
        let outputs = session
            .outputs()
            .iter()
            .map(tensor_info)
            .collect::<Vec<_>>();
        let (spec, geometry) = spec
            .resolve(&inputs, &outputs)
            .map_err(|reason| Error::Model {
                path: model.to_path_buf(),
                reason,
            })?;

        let mut extractor = Extractor {
            session,
            preprocess: Preprocess::new(&spec),
            dim: geometry.dim.unwrap_or(0),
            geometry,
            spec,
            provider,
            model_path: model.to_path_buf(),
            model_sha256,
            batch_size: options.batch_size,
            skip_bad_images: options.skip_bad_images,
            overlap_decoding: overlaps_decoding(provider, options.intra_threads),
        };
        if extractor.geometry.dim.is_none() {
            extractor.dim = extractor.probe_dim()?;
        }
        tracing::info!(
            model = %model.display(),
            provider,
            dim = extractor.dim,
            library = %library.display(),
            "model loaded"
        );
        Ok(extractor)
    }

    /// The execution provider actually in use: `"CPU"` or `"CUDA"`.
    pub fn provider(&self) -> &str {
        self.provider
    }

    /// Length of one feature vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The spec in use, every field resolved against the graph.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// SHA-256 of the model file, lower-case hex.
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// Shape of one preprocessed image in the model's layout: `(C, H, W)` for
    /// NCHW, `(H, W, C)` for NHWC.
    pub fn image_shape(&self) -> [usize; 3] {
        self.geometry.image_shape()
    }

    /// Features of an already preprocessed batch.
    ///
    /// `input: (n, C, H, W)` or `(n, H, W, C)` as the model's layout; returns
    /// `(n, dim)`. Runs in batches of `batch_size`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `input` does not have the model's image shape;
    /// [`Error::Ort`] when inference fails; [`Error::Model`] when the model
    /// returns an output of an unexpected shape.
    pub fn extract_tensor(&mut self, input: ArrayView4<f32>) -> Result<Array2<f32>> {
        let [a, b, c] = self.geometry.image_shape();
        let got = input.shape();
        if got[1..] != [a, b, c] {
            return Err(Error::Shape {
                op: "extract_tensor",
                expected: vec![usize::MAX, a, b, c],
                got: got.to_vec(),
            });
        }

        let step = self.geometry.fixed_batch.unwrap_or(self.batch_size);
        let mut features = Array2::zeros((input.len_of(Axis(0)), self.dim));
        for (i, chunk) in input.axis_chunks_iter(Axis(0), step).enumerate() {
            let rows = self.run(chunk)?;
            features
                .slice_mut(s![i * step..i * step + rows.nrows(), ..])
                .assign(&rows);
        }
        Ok(features)
    }

    /// Features of decoded images; each is converted, resized and normalised as
    /// the spec says (see [`preprocess`](Self::preprocess)).
    ///
    /// # Errors
    ///
    /// [`Error::Image`] for an image without pixels; as
    /// [`extract_tensor`](Self::extract_tensor) otherwise.
    pub fn extract_images(&mut self, images: &[DynamicImage]) -> Result<Array2<f32>> {
        let input = self.preprocess(images)?;
        self.extract_tensor(input.view())
    }

    /// The model input for decoded images, without running the model:
    /// `(n, C, H, W)` or `(n, H, W, C)` as the model's layout.
    ///
    /// A 1-channel model gets each image's luma (`image`'s `to_luma8`, Rec. 709
    /// weights; exact for gray pixels stored as RGB); a 3-channel model gets RGB
    /// in the spec's channel order, gray replicated. Alpha is dropped. Then the
    /// spec's resize, and `(p / scale − mean[c]) / std[c]` per channel.
    ///
    /// # Errors
    ///
    /// [`Error::Image`] for an image without pixels.
    pub fn preprocess(&self, images: &[DynamicImage]) -> Result<Array4<f32>> {
        self.preprocess_batch(images.len(), |i, out| {
            self.preprocess.image_into(&images[i], out)
        })
        .map_err(|(i, reason)| Error::Image {
            path: PathBuf::from(format!("image #{i}")),
            reason,
        })
    }

    /// Features of raw 8-bit gray images `(n, h, w)`, e.g. from IDX files.
    ///
    /// Images at the model's size go straight through normalisation; others are
    /// resized (and replicated to RGB for a 3-channel model) as decoded images are.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `h` or `w` is zero; as
    /// [`extract_tensor`](Self::extract_tensor) otherwise.
    pub fn extract_gray(&mut self, images: ArrayView3<u8>) -> Result<Array2<f32>> {
        let (n, h, w) = images.dim();
        if h == 0 || w == 0 {
            return Err(Error::Shape {
                op: "extract_gray",
                expected: vec![usize::MAX, self.geometry.height, self.geometry.width],
                got: vec![n, h, w],
            });
        }
        let input = self
            .preprocess_batch(n, |i, out| {
                self.preprocess
                    .gray_into(images.index_axis(Axis(0), i), out)
            })
            .map_err(|(i, reason)| Error::Image {
                path: PathBuf::from(format!("image #{i}")),
                reason,
            })?;
        self.extract_tensor(input.view())
    }

    /// Features of image files, read, decoded and preprocessed in parallel (on
    /// rayon's pool) a chunk at a time.
    ///
    /// When inference leaves cores free — it runs on CUDA, or ONNX Runtime was
    /// given fewer [`intra_threads`](ExtractorOptions::intra_threads) than the
    /// machine has — the next chunk is decoded while the model runs on the
    /// current one. Otherwise each chunk is decoded before it runs: ONNX
    /// Runtime's threads wait for each other by spinning, and decoding on the
    /// same cores stalls them for longer than it takes (256 images at batch 64
    /// on 2 cores with 2 intra-op threads: 0.81–0.88× the rate of inference
    /// alone when overlapped, 0.92–0.95× one after the other;
    /// `benches/README.md`).
    ///
    /// Formats are recognised by content (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM).
    /// `progress(done, total)` is called after each chunk.
    ///
    /// # Errors
    ///
    /// [`Error::Image`] naming the first file that cannot be read or decoded,
    /// unless [`ExtractorOptions::skip_bad_images`] is set, in which case such
    /// files are listed in [`FileFeatures::skipped`] and logged once as a warning.
    /// As [`extract_tensor`](Self::extract_tensor) otherwise.
    pub fn extract_files(
        &mut self,
        paths: &[PathBuf],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FileFeatures> {
        let total = paths.len();
        let chunk_len = self.batch_size.max(MIN_DECODE_CHUNK);
        let decoder = ChunkDecoder {
            preprocess: self.preprocess.clone(),
            shape: self.geometry.image_shape(),
            skip_bad_images: self.skip_bad_images,
        };
        let mut features = Vec::with_capacity(total * self.dim);
        let mut kept = Vec::with_capacity(total);
        let mut skipped = Vec::new();

        let mut chunks = paths.chunks(chunk_len).enumerate().peekable();
        let mut decoded = chunks.peek().map(|(_, chunk)| decoder.decode(chunk));
        while let Some((chunk_index, chunk)) = chunks.next() {
            let offset = chunk_index * chunk_len;
            let current = decoded.take().expect("decoded before its turn")?;
            let next = chunks.peek().map(|&(_, next)| next);
            let (rows, next_decoded) = if self.overlap_decoding {
                rayon::join(
                    || self.extract_tensor(current.input.view()),
                    || next.map(|next| decoder.decode(next)),
                )
            } else {
                let rows = self.extract_tensor(current.input.view());
                (rows, next.map(|next| decoder.decode(next)))
            };
            decoded = next_decoded;
            features.extend(rows?.iter().copied());
            kept.extend(current.good.iter().map(|i| offset + i));
            skipped.extend(current.skipped);
            progress((offset + chunk.len()).min(total), total);
        }

        if let Some((first, reason)) = skipped.first() {
            tracing::warn!(
                skipped = skipped.len(),
                first = %first.display(),
                reason = %reason,
                "skipped images that could not be decoded"
            );
        }
        let features = Array2::from_shape_vec((kept.len(), self.dim), features)
            .expect("dim features per kept file");
        Ok(FileFeatures {
            features,
            kept,
            skipped,
        })
    }

    /// Preprocesses `n` images in parallel into one input tensor; `fill(i, out)`
    /// writes image `i`. Fails with the first failing index and its reason.
    fn preprocess_batch(
        &self,
        n: usize,
        fill: impl Fn(usize, &mut [f32]) -> std::result::Result<(), String> + Sync,
    ) -> std::result::Result<Array4<f32>, (usize, String)> {
        let per_image = self.preprocess.per_image();
        let mut data = vec![0.0f32; n * per_image];
        let failures: Vec<(usize, String)> = data
            .par_chunks_mut(per_image)
            .enumerate()
            .filter_map(|(i, out)| fill(i, out).err().map(|reason| (i, reason)))
            .collect();
        if let Some(first) = failures.into_iter().min_by_key(|(i, _)| *i) {
            return Err(first);
        }
        let [a, b, c] = self.geometry.image_shape();
        Ok(Array4::from_shape_vec((n, a, b, c), data).expect("n preprocessed images"))
    }

    /// One inference call on at most one batch; `chunk: (n, ...)` → `(n, dim)`.
    fn run(&mut self, chunk: ArrayView4<f32>) -> Result<Array2<f32>> {
        let n = chunk.len_of(Axis(0));
        let input: CowArray<f32, Ix4> = match self.geometry.fixed_batch {
            // A graph with a fixed batch takes exactly that many images: pad with
            // zeros and drop the padding's rows below.
            Some(batch) if n < batch => {
                let mut shape = chunk.raw_dim();
                shape[0] = batch;
                let mut padded = Array4::zeros(shape);
                padded.slice_mut(s![..n, .., .., ..]).assign(&chunk);
                padded.into()
            }
            _ => chunk.as_standard_layout(),
        };
        let batch = input.len_of(Axis(0));

        let tensor = TensorRef::from_array_view(&input)?;
        let outputs = self
            .session
            .run(ort::inputs![self.geometry.input.as_str() => tensor])?;
        let output = outputs
            .get(&self.geometry.output)
            .ok_or_else(|| Error::Model {
                path: self.model_path.clone(),
                reason: format!("the run returned no output `{}`", self.geometry.output),
            })?;
        let (shape, values) = output.try_extract_tensor::<f32>()?;

        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let per_row: usize = dims.iter().skip(1).product();
        if dims.len() < 2 || dims[0] != batch || (self.dim != 0 && per_row != self.dim) {
            return Err(Error::Model {
                path: self.model_path.clone(),
                reason: format!(
                    "output `{}` has shape {dims:?} for a batch of {batch}; expected ({batch}, {})",
                    self.geometry.output, self.dim
                ),
            });
        }
        Ok(
            Array2::from_shape_vec((n, per_row), values[..n * per_row].to_vec())
                .expect("n rows of per_row values"),
        )
    }

    /// The feature dimension of a graph that leaves it dynamic: one run on a
    /// zero image.
    fn probe_dim(&mut self) -> Result<usize> {
        let [a, b, c] = self.geometry.image_shape();
        let zeros = Array4::zeros((self.geometry.fixed_batch.unwrap_or(1), a, b, c));
        let rows = self.run(zeros.view())?;
        if rows.ncols() == 0 {
            return Err(Error::Model {
                path: self.model_path.clone(),
                reason: format!("output `{}` is empty for an image", self.geometry.output),
            });
        }
        Ok(rows.ncols())
    }
}

/// Whether decoding the next chunk of files can overlap inference without
/// taking cores from it: see [`Extractor::extract_files`].
fn overlaps_decoding(provider: &str, intra_threads: Option<usize>) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // `None` and `Some(0)` leave ONNX Runtime its default, a thread per
    // physical core: decode first.
    provider == "CUDA" || intra_threads.is_some_and(|threads| threads > 0 && threads < cores)
}

/// Largest width or height of an image file [`Extractor::extract_files`] decodes.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Most bytes the decoder of one image file may allocate: a 8192×8192 RGBA image
/// with 16 bits per channel fits, a decompression bomb (a small file declaring a
/// huge image) is refused before its pixels are allocated. Decoding runs on every
/// core at once, so the peak is this times the number of cores at worst.
pub const MAX_IMAGE_ALLOC: u64 = 512 << 20;

/// Reads, decodes and preprocesses chunks of image files for
/// [`Extractor::extract_files`]; owns what it needs, so it can run beside
/// inference.
struct ChunkDecoder {
    preprocess: Preprocess,
    shape: [usize; 3],
    skip_bad_images: bool,
}

/// One chunk of files, ready for the model.
struct DecodedChunk {
    /// `(good.len(), …shape)`, the model's input.
    input: Array4<f32>,
    /// Indices in the chunk of the files in `input`.
    good: Vec<usize>,
    /// Files that could not be decoded (with `skip_bad_images`).
    skipped: Vec<(PathBuf, String)>,
}

impl ChunkDecoder {
    /// Decodes and preprocesses `chunk` in parallel.
    fn decode(&self, chunk: &[PathBuf]) -> Result<DecodedChunk> {
        let per_image = self.preprocess.per_image();
        let mut data = vec![0.0f32; chunk.len() * per_image];
        let one = |(out, path): (&mut [f32], &PathBuf)| {
            let image = decode(path)?;
            self.preprocess.image_into(&image, out)
        };
        let outcomes: Vec<std::result::Result<(), String>> = data
            .par_chunks_mut(per_image)
            .zip(chunk.par_iter())
            .map(one)
            .collect();

        let mut good = Vec::with_capacity(chunk.len());
        let mut skipped = Vec::new();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(()) => good.push(i),
                Err(reason) if self.skip_bad_images => skipped.push((chunk[i].clone(), reason)),
                Err(reason) => {
                    return Err(Error::Image {
                        path: chunk[i].clone(),
                        reason,
                    });
                }
            }
        }
        if good.len() < chunk.len() {
            data = good
                .iter()
                .flat_map(|&i| data[i * per_image..(i + 1) * per_image].iter().copied())
                .collect();
        }
        let [a, b, c] = self.shape;
        let input = Array4::from_shape_vec((good.len(), a, b, c), data)
            .expect("one preprocessed image per kept file");
        Ok(DecodedChunk {
            input,
            good,
            skipped,
        })
    }
}

/// Reads and decodes one image file, recognising the format by content, within
/// [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_ALLOC`]. EXIF orientation is not applied
/// (neither does torchvision's default loader).
fn decode(path: &Path) -> std::result::Result<DynamicImage, String> {
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| format!("cannot decode: {e}"))
}

/// The spec stored beside a model: `<model stem>.json`.
fn spec_beside(model: &Path) -> Result<ModelSpec> {
    let spec_path = model.with_extension("json");
    if !spec_path.is_file() {
        return Err(Error::Model {
            path: model.to_path_buf(),
            reason: format!(
                "no model spec: {} does not exist; write one or pass a spec or preset ({})",
                spec_path.display(),
                super::spec::PRESETS.join(", ")
            ),
        });
    }
    ModelSpec::from_json_file(&spec_path)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

fn tensor_info(outlet: &ort::value::Outlet) -> TensorInfo {
    let dtype = outlet.dtype();
    TensorInfo {
        name: outlet.name().to_string(),
        element: dtype.tensor_type().map(|t| t.to_string()),
        shape: dtype
            .tensor_shape()
            .map(|shape| shape.iter().copied().collect())
            .unwrap_or_default(),
    }
}

/// Creates the session on the requested device, falling back to the CPU (with one
/// warning) or failing as `options.require_device` says. Returns the session and
/// the provider in use.
fn create_session(
    environment: &Environment,
    library: &Path,
    model: &Path,
    options: &ExtractorOptions,
) -> Result<(Session, &'static str)> {
    let model_error = |e: ort::Error| Error::Model {
        path: model.to_path_buf(),
        reason: format!("ONNX Runtime cannot load it: {e}"),
    };
    let builder = || -> Result<ort::session::builder::SessionBuilder> {
        let builder = Session::builder(environment)?;
        Ok(match options.intra_threads {
            Some(threads) => builder
                .with_intra_threads(threads)
                .map_err(ort::Error::from)?,
            None => builder,
        })
    };

    let Device::Cuda { device_id } = options.device else {
        return Ok((
            builder()?.commit_from_file(model).map_err(model_error)?,
            "CPU",
        ));
    };

    let cuda_failure = match preload_cuda(library) {
        Err(reason) => reason,
        Ok(()) => {
            let cuda = ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure();
            match builder()?.with_execution_providers([cuda]) {
                Err(e) => e.to_string(),
                Ok(mut with_cuda) => match with_cuda.commit_from_file(model) {
                    Ok(session) => return Ok((session, "CUDA")),
                    // Creating the session is where a missing device or driver shows;
                    // if the CPU cannot load the model either, the model is at fault.
                    Err(e) => {
                        let cpu = builder()?.commit_from_file(model).map_err(model_error)?;
                        fall_back(e.to_string(), options.require_device)?;
                        return Ok((cpu, "CPU"));
                    }
                },
            }
        }
    };
    fall_back(cuda_failure, options.require_device)?;
    Ok((
        builder()?.commit_from_file(model).map_err(model_error)?,
        "CPU",
    ))
}

/// Reports that CUDA cannot be used: an error when the device is required,
/// otherwise one warning.
fn fall_back(reason: String, require_device: bool) -> Result<()> {
    let reason = reason.trim_end();
    if require_device {
        return Err(Error::Runtime(format!(
            "CUDA requested but unavailable: {reason}"
        )));
    }
    tracing::warn!(reason = %reason, "CUDA requested but unavailable; running on the CPU");
    Ok(())
}

/// Loads the CUDA and cuDNN libraries that `scripts/setup.sh --gpu` unpacked
/// beside the runtime, once per process; nothing to do when there are none
/// (the system's libraries are then found by the dynamic loader).
fn preload_cuda(library: &Path) -> std::result::Result<(), String> {
    static PRELOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PRELOADED
        .get_or_init(|| {
            let (cuda, cudnn) = runtime::cuda_library_dirs(library);
            if cuda.is_none() && cudnn.is_none() {
                return Ok(());
            }
            ep::cuda::preload_dylibs(cuda.as_deref(), cudnn.as_deref()).map_err(|e| {
                format!(
                    "cannot load the CUDA libraries beside {}: {e}",
                    library.display()
                )
            })
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractor_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Extractor>();
    }

    #[test]
    fn options_default_to_cpu_batches_of_64() {
        let options = ExtractorOptions::default();
        assert_eq!(options.device, Device::Cpu);
        assert_eq!(options.batch_size, 64);
        assert!(!options.require_device && !options.skip_bad_images);
    }
}
