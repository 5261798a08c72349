# Figures 1-5: the analyses of trained models they draw (positives on fixed images, FPN
# level allocation, positives over training) and one `lla report figure` job per figure.
# Which experiments feed which figure: params.yaml `figures` (per profile). File names and
# settings come from lla.report.figures, so the rules and the command cannot disagree.

from lla.analysis import positives as lla_positives
from lla.report import figures as lla_figures

# figure_outputs(profile) -> the PNG paths of all_figures (the paper report reads them too)
figure_outputs = lla_figures.figure_outputs


rule all_figures:
    """Figures 1-5 of the paper (PNG) for the selected profile."""
    input:
        figure_outputs(PROFILE),


rule analyze_positives:
    """Positive anchors of the final model on the most crowded images (Figs. 1, 2)."""
    input:
        checkpoint="runs/{profile}/{experiment}/model_final.pt",
        data=lambda wc: experiment_json(
            wc.experiment, wc.profile,
            lla_figures.figure_settings(config, wc.profile)["positives"]["split"]),
    output:
        "results/{profile}/figure_data/positives_{experiment}.json",
    log:
        "logs/{profile}/analyze/positives_{experiment}.log",
    params:
        run_dir=lambda wc, input: os.path.dirname(input.checkpoint),
        positives=lambda wc: lla_figures.figure_settings(config, wc.profile)["positives"],
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        gpu=lambda wc: job_resources(wc.profile, "analyze")["gpus"],
        cpus_per_gpu=lambda wc: job_resources(wc.profile, "analyze")["cpus_per_gpu"],
        mem_mb=lambda wc: job_resources(wc.profile, "analyze")["mem_mb"],
        runtime=lambda wc: job_resources(wc.profile, "analyze")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze positives --run-dir {params.run_dir}"
        " --profile {wildcards.profile} --split {params.positives[split]}"
        " --data {input.data} --images {params.positives[images]} --iterations final"
        " --out {output} > {log} 2>&1"


rule analyze_evolution:
    """Positive anchors at the checkpoints kept by train.keep_checkpoints, then final (Fig. 4)."""
    input:
        checkpoint="runs/{profile}/{experiment}/model_final.pt",
        data=lambda wc: experiment_json(
            wc.experiment, wc.profile,
            lla_figures.figure_settings(config, wc.profile)["positives"]["split"]),
    output:
        "results/{profile}/figure_data/evolution_{experiment}.json",
    log:
        "logs/{profile}/analyze/evolution_{experiment}.log",
    params:
        run_dir=lambda wc, input: os.path.dirname(input.checkpoint),
        positives=lambda wc: lla_figures.figure_settings(config, wc.profile)["positives"],
        iterations=lambda wc: " ".join(
            lla_positives.evolution_iterations(config, wc.profile, wc.experiment)),
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        gpu=lambda wc: job_resources(wc.profile, "analyze")["gpus"],
        cpus_per_gpu=lambda wc: job_resources(wc.profile, "analyze")["cpus_per_gpu"],
        mem_mb=lambda wc: job_resources(wc.profile, "analyze")["mem_mb"],
        runtime=lambda wc: job_resources(wc.profile, "analyze")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze positives --run-dir {params.run_dir}"
        " --profile {wildcards.profile} --split {params.positives[split]}"
        " --data {input.data} --images {params.positives[images]}"
        " --iterations {params.iterations} --out {output} > {log} 2>&1"


rule analyze_levels:
    """FPN level holding most positives of sampled GTs, with their areas (Fig. 3)."""
    input:
        checkpoint="runs/{profile}/{experiment}/model_final.pt",
        data=lambda wc: experiment_json(
            wc.experiment, wc.profile,
            lla_figures.figure_settings(config, wc.profile)["fig3"]["split"]),
    output:
        csv="results/{profile}/figure_data/levels_{experiment}.csv",
        per_level="results/{profile}/figure_data/levels_{experiment}.per_level.csv",
    log:
        "logs/{profile}/analyze/levels_{experiment}.log",
    params:
        fig3=lambda wc: lla_figures.figure_settings(config, wc.profile)["fig3"],
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        gpu=lambda wc: job_resources(wc.profile, "analyze")["gpus"],
        cpus_per_gpu=lambda wc: job_resources(wc.profile, "analyze")["cpus_per_gpu"],
        mem_mb=lambda wc: job_resources(wc.profile, "analyze")["mem_mb"],
        runtime=lambda wc: job_resources(wc.profile, "analyze")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze levels --checkpoint {input.checkpoint}"
        " --profile {wildcards.profile} --split {params.fig3[split]} --data {input.data}"
        " --max-gts {params.fig3[max_gts]} --seed {params.fig3[seed]}"
        " --out-csv {output.csv} --summary-csv {output.per_level} > {log} 2>&1"


rule figure_levels:
    """Fig. 3 and its per-level GT counts."""
    input:
        results=lambda wc: lla_figures.figure_inputs(config, wc.profile, "fig3",
                                                     f"results/{wc.profile}"),
    output:
        png="results/{profile}/figures/fig3.png",
        csv="results/{profile}/figures/fig3_levels.csv",
    log:
        "logs/{profile}/figures/fig3.log",
    params:
        settings=lambda wc: lla_figures.figure_settings(config, wc.profile),  # edits redraw
    conda:
        CONDA_ENV
    shell:
        "lla report figure fig3 --profile {wildcards.profile} --results results/{wildcards.profile}"
        " --out {output.png} --csv {output.csv} > {log} 2>&1"


rule figure:
    """Figs. 1, 2, 4 (positives drawn on images) and 5 (predictions vs GT)."""
    input:
        results=lambda wc: lla_figures.figure_inputs(config, wc.profile, wc.figure,
                                                     f"results/{wc.profile}"),
        data=lambda wc: lla_figures.figure_data(config, wc.profile, wc.figure),
    output:
        "results/{profile}/figures/{figure}.png",
    wildcard_constraints:
        figure="fig[1245]",  # fig3: rule figure_levels
    log:
        "logs/{profile}/figures/{figure}.log",
    params:
        settings=lambda wc: lla_figures.figure_settings(config, wc.profile),  # edits redraw
    conda:
        CONDA_ENV
    shell:
        "lla report figure {wildcards.figure} --profile {wildcards.profile}"
        " --results results/{wildcards.profile} --out {output} > {log} 2>&1"
