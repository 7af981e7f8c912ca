//! The `continual` command-line tool: extract features, learn classes step by step,
//! predict, evaluate, and run the class-incremental protocol.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, Axis};
use serde_json::json;

use continual::data::FeatureCache;
use continual::extract::{Device, Extractor, ExtractorOptions, ModelSpec};
use continual::pipeline;
use continual::protocol::{self, FeatureData, ProtocolConfig, ProtocolReport, StepResult};
use continual::stats::{RidgeConfig, SldaConfig};
use continual::{
    Classifier, Learner, LearnerConfig, LossKind, OptimizerKind, Schedule, Strategy, bundled,
};

/// Learn new image classes on the spot without forgetting the old ones.
///
/// A frozen network (ONNX) turns images into feature vectors; a small head learns
/// classes step by step, rehearsing a bounded memory of exemplars and distilling
/// its own earlier outputs (iCaRL). Start with `continual demo`.
#[derive(Parser)]
#[command(name = "continual", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Only errors on stderr; no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the class-incremental protocol on the bundled model and Fashion-MNIST subset.
    ///
    /// Base step on the five classes the bundled model was trained on, then 2, 2 and
    /// 1 new classes; prints accuracy after each step for the nearest-mean-of-exemplars
    /// classifier and the head, and the joint-training upper bound.
    Demo(DemoArgs),
    /// Run the class-incremental protocol on any data.
    Run(RunArgs),
    /// Extract features of a data set into a feature cache (.npz, readable from numpy).
    Extract(ExtractArgs),
    /// Learn one step of new classes into a state file (created when missing).
    Learn(LearnArgs),
    /// Predict the class of images, image folders or cached features.
    Predict(PredictArgs),
    /// Evaluate a state file on labelled data: accuracy, per class, confusion matrix.
    Eval(EvalArgs),
    /// Show what a state file holds.
    Info(InfoArgs),
}

/// How to turn images into features.
#[derive(Args, Clone)]
struct ModelArgs {
    /// ONNX model [default: the state's model, else the bundled Fashion-MNIST extractor].
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Model spec: a JSON file or a preset (torchvision-vgg16, keras-vgg16)
    /// [default: <model>.json beside the model].
    #[arg(long, value_name = "FILE|PRESET")]
    spec: Option<String>,

    /// Execution provider.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,

    /// CUDA device number (with --device cuda).
    #[arg(long, default_value_t = 0)]
    cuda_device: i32,

    /// Fail instead of falling back to the CPU when CUDA cannot be used.
    #[arg(long)]
    require_device: bool,

    /// The ONNX Runtime library [default: $ORT_DYLIB_PATH, then the copy scripts/setup.sh installs].
    #[arg(long, value_name = "FILE")]
    ort_lib: Option<PathBuf>,

    /// Images per inference batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,

    /// Threads ONNX Runtime may use [default: all cores].
    #[arg(long)]
    threads: Option<usize>,

    /// Skip images that cannot be decoded (with a warning and a count) instead of failing.
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

/// The learner's configuration; anything not given keeps the documented default.
#[derive(Args, Clone, Default)]
struct HeadArgs {
    /// Hidden layer sizes of the head, comma-separated; 0 for a linear head [default: 512].
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    hidden: Option<Vec<usize>>,

    /// Exemplar memory: total number of stored exemplars (K) [default: 2000].
    #[arg(long, value_name = "K")]
    memory: Option<usize>,

    /// Training epochs per step.
    #[arg(long)]
    epochs: Option<usize>,

    /// Minibatch size.
    #[arg(long)]
    batch: Option<usize>,

    /// Optimiser.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,

    /// Learning rate.
    #[arg(long)]
    lr: Option<f32>,

    /// Momentum (SGD).
    #[arg(long)]
    momentum: Option<f32>,

    /// Weight decay.
    #[arg(long)]
    weight_decay: Option<f32>,

    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    schedule: Option<ScheduleArg>,

    /// Epochs at which a step schedule multiplies the rate by --gamma, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "E,E,…")]
    milestones: Option<Vec<usize>>,

    /// Factor of a step schedule.
    #[arg(long)]
    gamma: Option<f32>,

    /// Loss: sigmoid BCE with distillation (iCaRL) or softmax cross-entropy with
    /// temperature distillation (LwF-style).
    #[arg(long, value_enum)]
    loss: Option<LossArg>,

    /// Weight of the distillation term (0 turns distillation off).
    #[arg(long)]
    lambda: Option<f32>,

    /// Distillation temperature (softmax loss).
    #[arg(long)]
    temperature: Option<f32>,

    /// Seed for initialisation, shuffling and the class order.
    #[arg(long)]
    seed: Option<u64>,

    /// What learns: icarl (head, exemplar memory, distillation), slda (streaming
    /// linear discriminant analysis), ridge (ridge regression), ncm (nearest class
    /// mean); `run` and `demo` also take `all`, to compare them [default: icarl].
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,

    /// Weight every class equally in the head's loss (true/false).
    #[arg(long, value_name = "BOOL")]
    balance: Option<bool>,

    /// Rescale new classes' output weights to the old classes' mean norm after each
    /// step (true/false).
    #[arg(long, value_name = "BOOL")]
    weight_align: Option<bool>,

    /// SLDA: shrinkage of the shared covariance towards the identity, in [0, 1].
    #[arg(long)]
    shrinkage: Option<f64>,

    /// Ridge: penalty λ on the weights.
    #[arg(long)]
    ridge_lambda: Option<f64>,

    /// Ridge: regress on this many fixed random ReLU features of the input.
    #[arg(long, value_name = "N")]
    projection: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StrategyArg {
    Icarl,
    Slda,
    Ridge,
    Ncm,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Constant,
    Step,
    Cosine,
}

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    Bce,
    Softmax,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClassifierArg {
    Nme,
    Head,
    Slda,
    Ridge,
    Ncm,
}

impl From<ClassifierArg> for Classifier {
    fn from(c: ClassifierArg) -> Self {
        match c {
            ClassifierArg::Nme => Classifier::Nme,
            ClassifierArg::Head => Classifier::Head,
            ClassifierArg::Slda => Classifier::Slda,
            ClassifierArg::Ridge => Classifier::Ridge,
            ClassifierArg::Ncm => Classifier::Ncm,
        }
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,

    /// Also write report.json and accuracy.svg into this folder.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,

    #[command(flatten)]
    head: HeadArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Data: a folder of IDX files, a folder of class sub-folders of images
    /// (optionally with train/ and test/ inside), or a feature cache (.npz).
    #[arg(long, value_name = "PATH")]
    data: PathBuf,

    /// Classes in the base step [default: half of them].
    #[arg(long, value_name = "N")]
    base: Option<usize>,

    /// Classes in each later step, comma-separated (e.g. 2,2,1).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,N,…",
        conflicts_with = "step"
    )]
    increments: Option<Vec<usize>>,

    /// Classes in every later step [default: 1].
    #[arg(long, value_name = "N")]
    step: Option<usize>,

    /// Class order: names or indices, comma-separated [default: a shuffle seeded by --seed].
    #[arg(long, value_delimiter = ',', value_name = "C,C,…")]
    order: Option<Vec<String>>,

    /// Fraction of each class held out for testing when the data has no test split.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,

    /// Skip the joint-training upper bound.
    #[arg(long)]
    no_joint: bool,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,

    /// Also write report.json and accuracy.svg into this folder.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,

    #[command(flatten)]
    model: ModelArgs,

    #[command(flatten)]
    head: HeadArgs,
}

#[derive(Args)]
struct ExtractArgs {
    /// Data: a folder of IDX files or a folder of class sub-folders of images
    /// (optionally with train/ and test/ inside).
    #[arg(long, value_name = "PATH")]
    data: PathBuf,

    /// The feature cache to write (.npz).
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,

    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct LearnArgs {
    /// State file to update (created when missing; saved atomically).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,

    /// Data: a folder of class sub-folders of images, a feature cache (.npz) or a
    /// folder of IDX files (its training split).
    #[arg(long, value_name = "PATH")]
    data: PathBuf,

    /// Learn only these classes of the data, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "C,C,…")]
    classes: Option<Vec<String>>,

    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    model: ModelArgs,

    /// Configuration of a new state (ignored when the state file exists).
    #[command(flatten)]
    head: HeadArgs,
}

#[derive(Args)]
struct PredictArgs {
    /// State file.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,

    /// Image files, folders of images (searched recursively) or feature caches (.npz).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Classifier [default: the state's preferred one: nme for icarl, else the
    /// strategy's own].
    #[arg(long, value_enum)]
    classifier: Option<ClassifierArg>,

    /// How many ranked classes to show.
    #[arg(long, default_value_t = 3)]
    top_k: usize,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// State file.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,

    /// Labelled data (as for `run`); its test split when it has one, else all of it.
    #[arg(long, value_name = "PATH")]
    data: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct InfoArgs {
    /// State file.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let ui = Ui { quiet: cli.quiet };
    let result = match cli.command {
        Command::Demo(args) => demo(args, ui),
        Command::Run(args) => run(args, ui),
        Command::Extract(args) => extract(args, ui),
        Command::Learn(args) => learn(args, ui),
        Command::Predict(args) => predict(args, ui),
        Command::Eval(args) => eval(args, ui),
        Command::Info(args) => info(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`continual demo | head`): nothing
        // is wrong with the run, so stop quietly.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: library errors already
/// name their cause in their own message (`path: reason`), so a cause whose text
/// is already on the line is not repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONTINUAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Progress bars and status lines on stderr, silenced by `--quiet`.
#[derive(Clone, Copy)]
struct Ui {
    quiet: bool,
}

impl Ui {
    /// A progress bar on stderr; it draws nothing when stderr is not a terminal.
    fn bar(self, len: usize, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{msg:>12} [{bar:32}] {pos}/{len} {per_sec} eta {eta}")
                .expect("the progress template is valid")
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn status(self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

fn open_extractor(args: &ModelArgs, model: &Path) -> Result<Extractor> {
    let spec = match &args.spec {
        None => None,
        Some(s) if Path::new(s).is_file() => Some(ModelSpec::from_json_file(Path::new(s))?),
        Some(s) => Some(ModelSpec::preset(s).ok_or_else(|| {
            anyhow!(
                "--spec {s:?} is neither a JSON file nor a preset (torchvision-vgg16, keras-vgg16)"
            )
        })?),
    };
    let options = ExtractorOptions {
        runtime_library: args.ort_lib.clone(),
        device: match args.device {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda {
                device_id: args.cuda_device,
            },
        },
        require_device: args.require_device,
        intra_threads: args.threads,
        batch_size: args.batch_size,
        skip_bad_images: args.skip_bad,
    };
    let extractor = Extractor::open(model, spec, options)?;
    Ok(extractor)
}

/// Features of a data path, extracting them when the path holds images.
fn load_features(
    data: &Path,
    model: &ModelArgs,
    default_model: &Path,
    ui: Ui,
) -> Result<(FeatureCache, Option<ExtractorInfo>)> {
    let source = pipeline::detect(data)?;
    let mut extractor = if source.needs_extractor() {
        let path = model
            .model
            .clone()
            .unwrap_or_else(|| default_model.to_path_buf());
        Some(open_extractor(model, &path)?)
    } else {
        None
    };
    let info = extractor.as_ref().map(ExtractorInfo::of);
    if let Some(info) = &info {
        ui.status(&format!(
            "model {} ({}-d features) on {}",
            info.model, info.dim, info.provider
        ));
    }
    let bar = ui.bar(0, "extracting");
    let clock = Instant::now();
    let cache = pipeline::features(&source, extractor.as_mut(), &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("reading {}", data.display()))?;
    bar.finish_and_clear();
    if extractor.is_some() {
        let n = cache.labels.len();
        let secs = clock.elapsed().as_secs_f64();
        ui.status(&format!(
            "extracted {n} images in {secs:.1} s ({:.0} images/s)",
            n as f64 / secs.max(1e-9)
        ));
    }
    Ok((cache, info))
}

/// What the CLI reports about the extractor in use.
#[derive(Clone, serde::Serialize)]
struct ExtractorInfo {
    model: String,
    model_sha256: String,
    provider: String,
    dim: usize,
}

impl ExtractorInfo {
    fn of(e: &Extractor) -> Self {
        ExtractorInfo {
            model: e.model_path().display().to_string(),
            model_sha256: e.model_sha256().to_string(),
            provider: e.provider().to_string(),
            dim: e.dim(),
        }
    }
}

impl HeadArgs {
    fn given(&self) -> bool {
        let HeadArgs {
            hidden,
            memory,
            epochs,
            batch,
            optimizer,
            lr,
            momentum,
            weight_decay,
            schedule,
            milestones,
            gamma,
            loss,
            lambda,
            temperature,
            seed,
            strategy,
            balance,
            weight_align,
            shrinkage,
            ridge_lambda,
            projection,
        } = self;
        hidden.is_some()
            || memory.is_some()
            || epochs.is_some()
            || batch.is_some()
            || optimizer.is_some()
            || lr.is_some()
            || momentum.is_some()
            || weight_decay.is_some()
            || schedule.is_some()
            || milestones.is_some()
            || gamma.is_some()
            || loss.is_some()
            || lambda.is_some()
            || temperature.is_some()
            || seed.is_some()
            || strategy.is_some()
            || balance.is_some()
            || weight_align.is_some()
            || shrinkage.is_some()
            || ridge_lambda.is_some()
            || projection.is_some()
    }

    /// One configuration per strategy asked for (four for `--strategy all`).
    fn configs(&self) -> Result<Vec<LearnerConfig>> {
        let base = self.config_for(StrategyArg::Icarl)?;
        let all = [
            StrategyArg::Icarl,
            StrategyArg::Slda,
            StrategyArg::Ridge,
            StrategyArg::Ncm,
        ];
        match self.strategy {
            Some(StrategyArg::All) => all.iter().map(|&s| self.config_for(s)).collect(),
            Some(s) => Ok(vec![self.config_for(s)?]),
            None => Ok(vec![base]),
        }
    }

    /// The configuration of a single strategy; `all` is refused.
    fn config(&self) -> Result<LearnerConfig> {
        match self.strategy {
            Some(StrategyArg::All) => {
                bail!("--strategy all compares strategies in `run` and `demo`; a state holds one")
            }
            Some(s) => self.config_for(s),
            None => self.config_for(StrategyArg::Icarl),
        }
    }

    fn config_for(&self, strategy: StrategyArg) -> Result<LearnerConfig> {
        let mut c = self.icarl_config()?;
        c.strategy = match strategy {
            StrategyArg::Icarl | StrategyArg::All => Strategy::Icarl,
            StrategyArg::Slda => {
                let mut s = SldaConfig::default();
                s.shrinkage = self.shrinkage.unwrap_or(s.shrinkage);
                Strategy::Slda(s)
            }
            StrategyArg::Ridge => {
                let mut r = RidgeConfig::default();
                r.lambda = self.ridge_lambda.unwrap_or(r.lambda);
                r.projection = self.projection.or(r.projection);
                r.seed = c.seed;
                Strategy::Ridge(r)
            }
            StrategyArg::Ncm => Strategy::Ncm,
        };
        c.validate()?;
        Ok(c)
    }

    /// The default configuration with every given head option applied.
    fn icarl_config(&self) -> Result<LearnerConfig> {
        let mut c = LearnerConfig::default();
        c.balance = self.balance.unwrap_or(c.balance);
        c.weight_align = self.weight_align.unwrap_or(c.weight_align);
        if let Some(h) = &self.hidden {
            c.hidden = h.iter().copied().filter(|&n| n > 0).collect();
        }
        if let Some(k) = self.memory {
            c.memory = k;
        }
        if let Some(e) = self.epochs {
            c.epochs = e;
        }
        if let Some(b) = self.batch {
            c.batch_size = b;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }

        let default_sgd = matches!(c.optimizer, OptimizerKind::Sgd { .. });
        match (self.optimizer, default_sgd) {
            (Some(OptimizerArg::Adam), true) => {
                c.optimizer = OptimizerKind::Adam {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 1e-5,
                }
            }
            (Some(OptimizerArg::Sgd), false) => {
                c.optimizer = OptimizerKind::Sgd {
                    lr: 0.1,
                    momentum: 0.9,
                    weight_decay: 1e-5,
                }
            }
            _ => {}
        }
        match &mut c.optimizer {
            OptimizerKind::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                *lr = self.lr.unwrap_or(*lr);
                *momentum = self.momentum.unwrap_or(*momentum);
                *weight_decay = self.weight_decay.unwrap_or(*weight_decay);
            }
            OptimizerKind::Adam {
                lr, weight_decay, ..
            } => {
                if self.momentum.is_some() {
                    bail!("--momentum applies to SGD only; Adam was chosen");
                }
                *lr = self.lr.unwrap_or(*lr);
                *weight_decay = self.weight_decay.unwrap_or(*weight_decay);
            }
        }

        match self.schedule {
            Some(ScheduleArg::Constant) => c.schedule = Schedule::Constant,
            Some(ScheduleArg::Cosine) => c.schedule = Schedule::Cosine { min_lr: 0.0 },
            Some(ScheduleArg::Step) => {
                let milestones = self
                    .milestones
                    .clone()
                    .unwrap_or_else(|| vec![c.epochs * 7 / 10, c.epochs * 9 / 10]);
                c.schedule = Schedule::Step {
                    milestones,
                    gamma: self.gamma.unwrap_or(0.2),
                }
            }
            None => {
                if let Schedule::Step { milestones, gamma } = &mut c.schedule {
                    if let Some(m) = &self.milestones {
                        *milestones = m.clone();
                    }
                    *gamma = self.gamma.unwrap_or(*gamma);
                } else if self.milestones.is_some() || self.gamma.is_some() {
                    bail!("--milestones and --gamma need --schedule step");
                }
            }
        }

        match self.loss {
            Some(LossArg::Bce) if !matches!(c.loss, LossKind::Bce { .. }) => {
                c.loss = LossKind::Bce { lambda: 1.0 }
            }
            Some(LossArg::Softmax) if !matches!(c.loss, LossKind::Softmax { .. }) => {
                c.loss = LossKind::Softmax {
                    lambda: 1.0,
                    temperature: 2.0,
                }
            }
            _ => {}
        }
        match &mut c.loss {
            LossKind::Bce { lambda } => {
                if self.temperature.is_some() {
                    bail!("--temperature applies to --loss softmax only");
                }
                *lambda = self.lambda.unwrap_or(*lambda);
            }
            LossKind::Softmax {
                lambda,
                temperature,
            } => {
                *lambda = self.lambda.unwrap_or(*lambda);
                *temperature = self.temperature.unwrap_or(*temperature);
            }
        }
        c.validate()?;
        Ok(c)
    }
}

fn demo(args: DemoArgs, ui: Ui) -> Result<()> {
    let model = ModelArgs {
        model: None,
        spec: None,
        device: DeviceArg::Cpu,
        cuda_device: 0,
        require_device: false,
        ort_lib: None,
        batch_size: 64,
        threads: None,
        skip_bad: false,
    };
    let data = bundled::data();
    let (cache, extractor) = load_features(&data, &model, &bundled::model(), ui)?;
    let n = cache.class_names.len();
    let base = bundled::MODEL_BASE_CLASSES.min(n);
    let steps = protocol::step_sizes(n, base, &[2, 2, 1], None)
        .or_else(|_| protocol::step_sizes(n, base, &[], Some(1)))?;
    let configs: Vec<ProtocolConfig> = args
        .head
        .configs()?
        .into_iter()
        .map(|learner| ProtocolConfig {
            order: (0..n).collect(),
            steps: steps.clone(),
            learner,
            joint: true,
        })
        .collect();
    let data_split = pipeline::train_test(&cache, 0.2, configs[0].learner.seed)?;
    let what = Described {
        data: data.display().to_string(),
        extractor,
    };
    run_protocol(
        &data_split,
        &configs,
        &what,
        args.json,
        args.report.as_deref(),
        ui,
    )
}

fn run(args: RunArgs, ui: Ui) -> Result<()> {
    let learners = args.head.configs()?;
    let seed = learners[0].seed;
    let (cache, extractor) = load_features(&args.data, &args.model, &bundled::model(), ui)?;
    let n = cache.class_names.len();
    let order = match &args.order {
        Some(order) => {
            let indices = order
                .iter()
                .map(|c| class_ref(c, &cache.class_names))
                .collect::<Result<Vec<_>>>()?;
            protocol::class_order(n, Some(&indices), seed)?
        }
        None => protocol::class_order(n, None, seed)?,
    };
    let base = args.base.unwrap_or(order.len().div_ceil(2));
    let steps = protocol::step_sizes(
        order.len(),
        base,
        args.increments.as_deref().unwrap_or(&[]),
        Some(args.step.unwrap_or(1)),
    )?;
    let data = pipeline::train_test(&cache, args.test_fraction, seed)?;
    let configs: Vec<ProtocolConfig> = learners
        .into_iter()
        .map(|learner| ProtocolConfig {
            order: order.clone(),
            steps: steps.clone(),
            learner,
            joint: !args.no_joint,
        })
        .collect();
    let what = Described {
        data: args.data.display().to_string(),
        extractor,
    };
    run_protocol(
        &data,
        &configs,
        &what,
        args.json,
        args.report.as_deref(),
        ui,
    )
}

/// A class given by name, or by index when no class has that name.
fn class_ref(c: &str, names: &[String]) -> Result<usize> {
    if let Some(i) = names.iter().position(|n| n == c) {
        return Ok(i);
    }
    match c.parse::<usize>() {
        Ok(i) if i < names.len() => Ok(i),
        _ => bail!(
            "unknown class {c:?} in --order (classes: {})",
            names.join(", ")
        ),
    }
}

/// Where a protocol's features came from, for the report.
struct Described {
    data: String,
    extractor: Option<ExtractorInfo>,
}

fn run_protocol(
    data: &FeatureData,
    configs: &[ProtocolConfig],
    what: &Described,
    json: bool,
    report_dir: Option<&Path>,
    ui: Ui,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut reports = Vec::with_capacity(configs.len());
    for config in configs {
        let strategy = config.learner.strategy.name();
        let columns: Vec<&str> = config
            .learner
            .strategy
            .classifiers()
            .iter()
            .map(|c| c.name())
            .collect();
        if !json {
            if configs.len() > 1 {
                writeln!(out, "strategy {strategy}")?;
            }
            let heads: String = columns.iter().map(|c| format!("  {c:>6}")).collect();
            writeln!(
                out,
                "{:>4}  {:>7}  {:>9}{heads}  {:>7}  new classes",
                "step", "classes", "exemplars", "seconds"
            )?;
        }
        let bar = ui.bar(config.steps.len(), strategy);
        let mut on_step = |s: &StepResult| {
            bar.inc(1);
            if !json {
                let accs: String = columns
                    .iter()
                    .map(|c| format!("  {:>6.3}", s.accuracy[*c]))
                    .collect();
                bar.suspend(|| {
                    let _ = writeln!(
                        out,
                        "{:>4}  {:>7}  {:>9}{accs}  {:>7.2}  {}",
                        s.step,
                        s.classes_seen.len(),
                        s.exemplars,
                        s.seconds,
                        s.new_classes.join(", ")
                    );
                });
            }
        };
        let mut config = config.clone();
        // The joint upper bound does not depend on the strategy: train it once.
        config.joint &= reports.is_empty();
        let report = protocol::run(data, &config, &mut on_step)?;
        bar.finish_and_clear();
        if !json {
            writeln!(out)?;
        }
        reports.push(report);
    }

    let value = report_json(&reports, what)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        print_summary(&mut out, &reports)?;
    }
    if let Some(dir) = report_dir {
        write_report(dir, &reports, &value)?;
        ui.status(&format!("report written to {}", dir.display()));
    }
    Ok(())
}

/// One report as JSON (the README's schema), or for several strategies
/// `{"protocol", "strategies": {name: report}, "joint_upper_bound"}`.
fn report_json(reports: &[ProtocolReport], what: &Described) -> Result<serde_json::Value> {
    let describe = |value: &mut serde_json::Value| {
        let protocol = value["protocol"]
            .as_object_mut()
            .expect("the protocol summary serialises to an object");
        protocol.insert("data".into(), json!(what.data));
        protocol.insert("extractor".into(), json!(what.extractor));
    };
    if let [report] = reports {
        let mut value = serde_json::to_value(report)?;
        describe(&mut value);
        return Ok(value);
    }
    let mut strategies = serde_json::Map::new();
    let mut protocol = serde_json::Value::Null;
    for report in reports {
        let mut value = serde_json::to_value(report)?;
        describe(&mut value);
        let object = value
            .as_object_mut()
            .expect("a report serialises to an object");
        let summary = object.remove("protocol").unwrap_or_default();
        object.remove("joint_upper_bound");
        if protocol.is_null() {
            protocol = summary;
            if let Some(p) = protocol.as_object_mut() {
                p.remove("learner");
            }
        }
        strategies.insert(
            report.protocol.learner.strategy.name().into(),
            json!({"learner": report.protocol.learner, "report": value}),
        );
    }
    Ok(json!({
        "protocol": protocol,
        "strategies": strategies,
        "joint_upper_bound": reports.iter().find_map(|r| r.joint_upper_bound),
    }))
}

fn print_summary(out: &mut impl Write, reports: &[ProtocolReport]) -> Result<()> {
    writeln!(
        out,
        "{:<10} {:<10} {:>7} {:>9} {:>10} {:>9} {:>11}",
        "strategy", "classifier", "final", "average", "forgetting", "seconds", "state bytes"
    )?;
    for r in reports {
        let strategy = &r.protocol.learner.strategy;
        let seconds: f64 = r.steps.iter().map(|s| s.seconds).sum();
        for c in strategy.classifiers() {
            let c = c.name();
            writeln!(
                out,
                "{:<10} {:<10} {:>7.3} {:>9.3} {:>10.3} {:>9.2} {:>11}",
                strategy.name(),
                c,
                r.final_accuracy[c],
                r.average_incremental_accuracy[c],
                r.forgetting[c],
                seconds,
                r.state_bytes
            )?;
        }
    }
    if let Some(joint) = reports.iter().find_map(|r| r.joint_upper_bound) {
        writeln!(
            out,
            "joint upper bound: {joint:.3} (a linear head trained on all classes at once)"
        )?;
    }
    Ok(())
}

fn write_report(dir: &Path, reports: &[ProtocolReport], value: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_path = dir.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let svg_path = dir.join("accuracy.svg");
    plot_accuracy(&svg_path, reports).with_context(|| format!("drawing {}", svg_path.display()))
}

fn plot_accuracy(path: &Path, reports: &[ProtocolReport]) -> Result<()> {
    use plotters::prelude::*;

    let plot_err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let seen: Vec<f64> = reports[0]
        .steps
        .iter()
        .map(|s| s.classes_seen.len() as f64)
        .collect();
    let x_max = seen.last().copied().unwrap_or(1.0) + 0.5;
    let x_min = seen.first().copied().unwrap_or(0.0) - 0.5;
    let root = SVGBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Top-1 accuracy on all classes seen so far",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x_min..x_max, 0.0..1.0)
        .map_err(|e| plot_err(&e))?;
    chart
        .configure_mesh()
        .x_desc("classes seen")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("accuracy")
        .draw()
        .map_err(|e| plot_err(&e))?;
    let mut palette = (0..).map(|i| Palette99::pick(i).to_rgba());
    for r in reports {
        let strategy = r.protocol.learner.strategy.name();
        for c in r.protocol.learner.strategy.classifiers() {
            let color = palette.next().expect("the palette cycles");
            let points: Vec<(f64, f64)> = seen
                .iter()
                .zip(&r.steps)
                .map(|(&x, s)| (x, s.accuracy[c.name()]))
                .collect();
            let label = if strategy == c.name() {
                strategy.to_string()
            } else {
                format!("{strategy} {}", c.name())
            };
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, color.filled())),
                )
                .map_err(|e| plot_err(&e))?;
        }
    }
    if let Some(joint) = reports.iter().find_map(|r| r.joint_upper_bound) {
        chart
            .draw_series(LineSeries::new(
                vec![(x_min, joint), (x_max, joint)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| plot_err(&e))?
            .label("joint upper bound")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(&e))?;
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}

fn extract(args: ExtractArgs, ui: Ui) -> Result<()> {
    let source = pipeline::detect(&args.data)?;
    if !source.needs_extractor() {
        bail!("{} is already a feature cache", args.data.display());
    }
    let (cache, _) = load_features(&args.data, &args.model, &bundled::model(), ui)?;
    cache.save(&args.out)?;
    let test = cache
        .split
        .iter()
        .filter(|&&s| s == continual::data::TEST)
        .count();
    println!(
        "wrote {}: {} samples ({} train, {test} test), {} classes, {}-d features",
        args.out.display(),
        cache.labels.len(),
        cache.labels.len() - test,
        cache.class_names.len(),
        cache.features.ncols()
    );
    Ok(())
}

/// Metadata keys a state file carries about the extractor it was learned with.
const META_MODEL: &str = "model";
const META_SHA: &str = "model_sha256";
const META_SPEC: &str = "spec";

/// The model a state was learned with, when the command line names none.
fn state_model(learner: Option<&Learner>) -> PathBuf {
    learner
        .and_then(|l| l.metadata().get(META_MODEL))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(bundled::model)
}

/// Refuses features from a model other than the one the state was learned with.
fn check_same_model(learner: &Learner, state: &Path, cache: &FeatureCache) -> Result<()> {
    if let Some(sha) = learner.metadata().get(META_SHA)
        && !cache.model_sha256.is_empty()
        && *sha != cache.model_sha256
    {
        bail!(
            "{} was learned with model sha256 {sha}, but these features come from sha256 {}; \
             use the same model (--model)",
            state.display(),
            cache.model_sha256
        );
    }
    Ok(())
}

fn load_state(path: &Path) -> Result<Learner> {
    Learner::load(path).map_err(anyhow::Error::from)
}

fn learn(args: LearnArgs, ui: Ui) -> Result<()> {
    let existing = if args.state.exists() {
        Some(load_state(&args.state)?)
    } else {
        None
    };
    if existing.is_some() && args.head.given() {
        tracing::warn!(
            state = %args.state.display(),
            "learner options ignored: the state file keeps the configuration it was created with"
        );
    }
    let default_model = state_model(existing.as_ref());
    let (cache, _) = load_features(&args.data, &args.model, &default_model, ui)?;
    let mut rows: Vec<usize> = (0..cache.labels.len())
        .filter(|&i| cache.split[i] == continual::data::TRAIN)
        .collect();
    if let Some(classes) = &args.classes {
        let wanted = classes
            .iter()
            .map(|c| {
                cache
                    .class_names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| {
                        anyhow!(
                            "class {c:?} is not in {} (classes: {})",
                            args.data.display(),
                            cache.class_names.join(", ")
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.retain(|&i| wanted.contains(&cache.labels[i]));
    }
    if rows.is_empty() {
        bail!("{}: no training samples to learn from", args.data.display());
    }
    let x = cache.features.select(Axis(0), &rows);
    let labels: Vec<&str> = rows
        .iter()
        .map(|&i| cache.class_names[cache.labels[i]].as_str())
        .collect();
    let meta: Vec<String> = rows.iter().map(|&i| cache.paths[i].clone()).collect();

    let mut learner = match existing {
        Some(learner) => {
            check_same_model(&learner, &args.state, &cache)?;
            learner
        }
        None => {
            let mut learner = Learner::new(x.ncols(), args.head.config()?)?;
            let m = learner.metadata_mut();
            if !cache.model_sha256.is_empty() {
                m.insert(META_SHA.into(), cache.model_sha256.clone());
                m.insert(META_SPEC.into(), cache.spec_json.clone());
            }
            if pipeline::detect(&args.data)?.needs_extractor() {
                let model = args.model.model.clone().unwrap_or(default_model);
                m.insert(META_MODEL.into(), model.display().to_string());
            }
            learner
        }
    };

    let epochs = learner.config().epochs;
    let bar = ui.bar(epochs, "training");
    let report = learner.learn_with(x.view(), &labels, Some(&meta), &mut |epoch, _, loss| {
        bar.set_position(epoch as u64 + 1);
        bar.set_message(format!("loss {loss:.4}"));
    })?;
    bar.finish_and_clear();
    learner.save(&args.state)?;

    if args.json {
        let value = json!({
            "state": args.state.display().to_string(),
            "new_classes": report.new_classes,
            "refreshed_classes": report.refreshed_classes,
            "samples": report.samples,
            "classes": learner.classes(),
            "exemplars": report.exemplars,
            "final_loss": report.final_loss,
            "seconds": report.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "learned {} samples in {:.2} s: new classes [{}], refreshed [{}]; {} classes, {} exemplars; saved {}",
            report.samples,
            report.seconds,
            report.new_classes.join(", "),
            report.refreshed_classes.join(", "),
            learner.classes().len(),
            report.exemplars,
            args.state.display()
        );
    }
    Ok(())
}

/// Image files under `path` (itself when it is a file), sorted, recursively.
fn image_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", path.display()))?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            image_files(&entry, out)?;
        } else if continual::data::is_image_file(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

fn predict(args: PredictArgs, ui: Ui) -> Result<()> {
    let learner = load_state(&args.state)?;
    let mut sources: Vec<String> = Vec::new();
    let mut parts: Vec<Array2<f32>> = Vec::new();
    let mut files = Vec::new();
    for input in &args.inputs {
        if input.is_file() && input.extension().is_some_and(|e| e == "npz") {
            let cache = FeatureCache::load(input)?;
            check_same_model(&learner, &args.state, &cache)?;
            sources.extend(cache.paths.iter().cloned());
            parts.push(cache.features);
        } else if input.exists() {
            image_files(input, &mut files)?;
        } else {
            bail!("{}: no such file or folder", input.display());
        }
    }
    if !files.is_empty() {
        let model = args
            .model
            .model
            .clone()
            .unwrap_or_else(|| state_model(Some(&learner)));
        let mut extractor = open_extractor(&args.model, &model)?;
        if let Some(sha) = learner.metadata().get(META_SHA)
            && sha != extractor.model_sha256()
        {
            bail!(
                "{} was learned with model sha256 {sha}, but {} has sha256 {}",
                args.state.display(),
                model.display(),
                extractor.model_sha256()
            );
        }
        let bar = ui.bar(files.len(), "extracting");
        let extracted = extractor.extract_files(&files, &mut |done, _| {
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        for (path, why) in &extracted.skipped {
            ui.status(&format!("skipped {}: {why}", path.display()));
        }
        sources.extend(
            extracted
                .kept
                .iter()
                .map(|&i| files[i].display().to_string()),
        );
        parts.push(extracted.features);
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let x = ndarray::concatenate(Axis(0), &views)?;
    let classifier = args
        .classifier
        .map_or(learner.classifiers()[0], Classifier::from);
    let predictions = learner.predict(x.view(), classifier, args.top_k)?;

    let mut out = std::io::stdout().lock();
    if args.json {
        let items: Vec<_> = sources
            .iter()
            .zip(&predictions)
            .map(|(source, p)| {
                json!({
                    "input": source,
                    "class": p.class,
                    "score": p.score,
                    "top": p.top.iter().map(|(c, s)| json!({"class": c, "score": s})).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
    } else {
        for (source, p) in sources.iter().zip(&predictions) {
            let top: Vec<String> = p.top.iter().map(|(c, s)| format!("{c} {s:.3}")).collect();
            writeln!(
                out,
                "{source}\t{}\t{:.3}\t{}",
                p.class,
                p.score,
                top.join(", ")
            )?;
        }
    }
    Ok(())
}

fn eval(args: EvalArgs, ui: Ui) -> Result<()> {
    let learner = load_state(&args.state)?;
    let (cache, _) = load_features(&args.data, &args.model, &state_model(Some(&learner)), ui)?;
    check_same_model(&learner, &args.state, &cache)?;
    let has_test = cache.split.contains(&continual::data::TEST);
    let known = learner.classes();
    let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut truth = Vec::new();
    for i in 0..cache.labels.len() {
        if has_test && cache.split[i] != continual::data::TEST {
            continue;
        }
        let name = &cache.class_names[cache.labels[i]];
        match learner.class_index(name) {
            Some(c) => {
                rows.push(i);
                truth.push(c);
            }
            None => *ignored.entry(name.clone()).or_default() += 1,
        }
    }
    if rows.is_empty() {
        bail!(
            "{} has no samples of the classes {} knows ({})",
            args.data.display(),
            args.state.display(),
            known.join(", ")
        );
    }
    let x = cache.features.select(Axis(0), &rows);
    let mut results = serde_json::Map::new();
    let mut out = std::io::stdout().lock();
    for &by in learner.classifiers() {
        let name = by.name();
        let predicted: Vec<usize> = learner
            .predict(x.view(), by, 1)?
            .into_iter()
            .map(|p| p.index)
            .collect();
        let confusion = protocol::confusion_matrix(&predicted, &truth, known.len());
        let per_class: Vec<f64> = (0..known.len())
            .map(|c| {
                let total: usize = confusion.row(c).sum();
                confusion[[c, c]] as f64 / total.max(1) as f64
            })
            .collect();
        let accuracy = protocol::accuracy(&predicted, &truth);
        if !args.json {
            writeln!(
                out,
                "{name}: accuracy {accuracy:.4} on {} samples",
                truth.len()
            )?;
            writeln!(out, "  per class:")?;
            for (c, acc) in known.iter().zip(&per_class) {
                writeln!(out, "    {c:<20} {acc:.3}")?;
            }
            writeln!(
                out,
                "  confusion (rows: true class, columns: predicted, in class order):"
            )?;
            for (c, row) in known.iter().zip(confusion.rows()) {
                let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
                writeln!(out, "    {c:<20}{}", cells.join(""))?;
            }
        }
        results.insert(
            name.into(),
            json!({
                "accuracy": accuracy,
                "per_class": known.iter().cloned().zip(per_class).collect::<BTreeMap<_, _>>(),
                "confusion": confusion.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
            }),
        );
    }
    if args.json {
        let value = json!({
            "samples": truth.len(),
            "classes": known,
            "ignored_unknown_classes": ignored,
            "results": results,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else if !ignored.is_empty() {
        writeln!(
            out,
            "ignored samples of classes the state does not know: {}",
            ignored
                .iter()
                .map(|(c, n)| format!("{c} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(())
}

fn info(args: InfoArgs) -> Result<()> {
    let learner = load_state(&args.state)?;
    let counts = learner.exemplar_counts();
    let size = std::fs::metadata(&args.state)
        .with_context(|| format!("reading {}", args.state.display()))?
        .len();
    if args.json {
        let value = json!({
            "state": args.state.display().to_string(),
            "bytes": size,
            "dim": learner.dim(),
            "steps": learner.steps(),
            "classes": learner.classes().iter().zip(&counts)
                .map(|(c, n)| json!({"class": c, "exemplars": n})).collect::<Vec<_>>(),
            "exemplars": counts.iter().sum::<usize>(),
            "config": learner.config(),
            "metadata": learner.metadata(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let c = learner.config();
    println!("state      {} ({size} bytes)", args.state.display());
    println!("features   {}-d", learner.dim());
    println!("strategy   {}", c.strategy.name());
    println!(
        "head       hidden {:?}, {} outputs",
        c.hidden,
        learner.classes().len()
    );
    println!(
        "memory     {} of {} exemplars",
        counts.iter().sum::<usize>(),
        c.memory
    );
    println!("steps      {}", learner.steps());
    println!(
        "training   {:?}, {:?}, {:?}",
        c.optimizer, c.schedule, c.loss
    );
    println!(
        "           {} epochs, batch {}, seed {}",
        c.epochs, c.batch_size, c.seed
    );
    for (key, value) in learner.metadata() {
        println!("metadata   {key}: {value}");
    }
    println!("classes (exemplars):");
    for (class, n) in learner.classes().iter().zip(&counts) {
        println!("  {class:<24} {n}");
    }
    Ok(())
}
