//! Measurements behind `LearnerConfig::default()`; run by hand with
//! `cargo test --test tune -- --ignored --nocapture`.

mod common;

use common::{Clusters, protocol};
use continual::{LearnerConfig, LossKind, OptimizerKind, Schedule};

fn steps() -> Vec<Vec<usize>> {
    (0..5).map(|k| vec![2 * k, 2 * k + 1]).collect()
}

#[test]
#[ignore = "a measurement, not a check"]
fn measure_defaults() {
    let sigma: f32 = std::env::var("SIGMA")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.5);
    let clusters = Clusters::new(64, 10, sigma, 7);
    let sgd = |lr| OptimizerKind::Sgd {
        lr,
        momentum: 0.9,
        weight_decay: 1e-5,
    };
    let adam = |lr| OptimizerKind::Adam {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-5,
    };
    let mut runs: Vec<(String, LearnerConfig)> = Vec::new();
    for hidden in [vec![], vec![128]] {
        for (name, opt) in [
            ("sgd0.01", sgd(0.01)),
            ("sgd0.05", sgd(0.05)),
            ("sgd0.1", sgd(0.1)),
            ("sgd0.5", sgd(0.5)),
            ("adam1e-3", adam(1e-3)),
            ("adam1e-2", adam(1e-2)),
        ] {
            for epochs in [10, 30, 60] {
                for (sname, schedule) in [
                    ("const", Schedule::Constant),
                    ("cos", Schedule::Cosine { min_lr: 0.0 }),
                ] {
                    runs.push((
                        format!("{hidden:?} {name} e{epochs} {sname}"),
                        LearnerConfig {
                            hidden: hidden.clone(),
                            optimizer: opt.clone(),
                            schedule,
                            epochs,
                            ..LearnerConfig::default()
                        },
                    ));
                }
            }
        }
    }
    runs.push((
        "joint-ish finetune".into(),
        LearnerConfig {
            memory: 0,
            loss: LossKind::Bce { lambda: 0.0 },
            ..LearnerConfig::default()
        },
    ));
    for (name, config) in runs {
        let (head, nme, secs) = protocol(&clusters, config, &steps(), 300, 100);
        println!("{name:40} head {head:.3} nme {nme:.3} {secs:.2}s");
    }
}

#[test]
#[ignore = "a measurement, not a check"]
fn measure_baselines() {
    let sigma: f32 = std::env::var("SIGMA")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.5);
    let clusters = Clusters::new(64, 10, sigma, 7);
    for hidden in [vec![], vec![128]] {
        let base = LearnerConfig {
            hidden: hidden.clone(),
            ..LearnerConfig::default()
        };
        let joint = vec![(0..10).collect::<Vec<_>>()];
        let r = protocol(
            &clusters,
            LearnerConfig {
                memory: 100_000,
                ..base.clone()
            },
            &joint,
            300,
            100,
        );
        println!("{hidden:?} joint      {r:.3?}");
        let r = protocol(&clusters, base.clone(), &steps(), 300, 100);
        println!("{hidden:?} icarl      {r:.3?}");
        let r = protocol(
            &clusters,
            LearnerConfig {
                memory: 0,
                ..base.clone()
            },
            &steps(),
            300,
            100,
        );
        println!("{hidden:?} lwf-only   {r:.3?}");
        let r = protocol(
            &clusters,
            LearnerConfig {
                loss: LossKind::Bce { lambda: 0.0 },
                ..base.clone()
            },
            &steps(),
            300,
            100,
        );
        println!("{hidden:?} mem-only   {r:.3?}");
        let r = protocol(
            &clusters,
            LearnerConfig {
                memory: 0,
                loss: LossKind::Bce { lambda: 0.0 },
                ..base.clone()
            },
            &steps(),
            300,
            100,
        );
        println!("{hidden:?} finetune   {r:.3?}");
        let r = protocol(
            &clusters,
            LearnerConfig {
                loss: LossKind::Softmax {
                    lambda: 1.0,
                    temperature: 2.0,
                },
                ..base.clone()
            },
            &steps(),
            300,
            100,
        );
        println!("{hidden:?} softmax    {r:.3?}");
    }
}

#[test]
#[ignore = "a measurement, not a check"]
fn measure_forgetting() {
    for seed in [7, 8, 9] {
        let clusters = Clusters::new(64, 10, 2.5, seed);
        for hidden in [vec![], vec![128]] {
            let base = LearnerConfig {
                hidden: hidden.clone(),
                ..LearnerConfig::default()
            };
            let ft = LearnerConfig {
                memory: 0,
                loss: LossKind::Softmax {
                    lambda: 0.0,
                    temperature: 2.0,
                },
                ..base.clone()
            };
            let both = LearnerConfig {
                loss: LossKind::Softmax {
                    lambda: 1.0,
                    temperature: 2.0,
                },
                ..base.clone()
            };
            let r1 = protocol(&clusters, ft, &steps(), 300, 100);
            let r2 = protocol(&clusters, both, &steps(), 300, 100);
            let r3 = protocol(&clusters, base.clone(), &steps(), 300, 100);
            println!(
                "seed {seed} {hidden:?} finetune {r1:.3?} softmax+mem+kd {r2:.3?} icarl {r3:.3?}"
            );
        }
    }
}

#[test]
#[ignore = "a measurement, not a check"]
fn measure_step_time() {
    // 3000 × 256 features, 10 classes in one step, default settings.
    let clusters = Clusters::new(256, 10, 2.5, 1);
    let (x, y) = clusters.sample(&(0..10).collect::<Vec<_>>(), 300, 1);
    for hidden in [vec![], vec![512]] {
        let config = LearnerConfig {
            hidden: hidden.clone(),
            ..LearnerConfig::default()
        };
        let mut learner = continual::Learner::new(256, config).expect("valid");
        let report = learner
            .learn(x.view(), &common::names(&y), None)
            .expect("learns");
        println!(
            "{hidden:?}: {:.2}s for one step of 3000 × 256, 10 classes",
            report.seconds
        );
    }
}
