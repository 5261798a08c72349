# Figures 1-5: the analyses of trained models they draw (positives on fixed images, FPN
# level allocation, positives over training) and one `lla report figure` job per figure.
# Which experiments feed which figure: params.yaml `figures` (per profile). The files each
# figure reads come from lla.report.figures (figure_inputs), so the rules and the command
# cannot disagree.


rule all_figures:
    """Figures 1-5 of the paper (PNG) for the selected profile."""
    input:
        figure_outputs(PROFILE),


rule analyze_positives:
    """Positive anchors on the most crowded images: of the final model (`positives`,
    Figs. 1, 2), or at the checkpoints kept by train.keep_checkpoints, then final
    (`evolution`, Fig. 4)."""
    input:
        checkpoint=layout.final_checkpoint("{profile}", "{experiment}"),
        data=lambda wc: experiment_json(wc.experiment, wc.profile,
                                        figure_settings(wc.profile)["positives"]["split"]),
    output:
        RESULTS.figure_data("{kind}", "{experiment}"),
    wildcard_constraints:
        kind="positives|evolution",
    log:
        layout.log("{profile}", "analyze", "{kind}_{experiment}"),
    params:
        run_dir=lambda wc: str(layout.run_dir(wc.profile, wc.experiment)),
        positives=lambda wc: figure_settings(wc.profile)["positives"],
        iterations=lambda wc: (" ".join(lla_positives.evolution_iterations(
            config, wc.profile, wc.experiment)) if wc.kind == "evolution" else "final"),
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        **job_resources("analyze"),
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
        checkpoint=layout.final_checkpoint("{profile}", "{experiment}"),
        data=lambda wc: experiment_json(wc.experiment, wc.profile,
                                        figure_settings(wc.profile)["fig3"]["split"]),
    output:
        csv=RESULTS.figure_data("levels", "{experiment}"),
        per_level=RESULTS.levels_per_level("{experiment}"),
    log:
        layout.log("{profile}", "analyze", "levels_{experiment}"),
    params:
        fig3=lambda wc: figure_settings(wc.profile)["fig3"],
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        **job_resources("analyze"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze levels --checkpoint {input.checkpoint}"
        " --profile {wildcards.profile} --split {params.fig3[split]} --data {input.data}"
        " --max-gts {params.fig3[max_gts]} --seed {params.fig3[seed]}"
        " --out {output.csv} > {log} 2>&1"


rule figure_levels:
    """Fig. 3 and its per-level GT counts."""
    input:
        results=lambda wc: lla_figures.figure_inputs(config, wc.profile, "fig3",
                                                     layout.results(wc.profile).root),
    output:
        png=RESULTS.figure("fig3"),
        csv=RESULTS.figure_csv("fig3"),
    log:
        layout.log("{profile}", "figures", "fig3"),
    params:
        settings=lambda wc: figure_settings(wc.profile),  # edits redraw
        results=lambda wc: str(layout.results(wc.profile).root),
    conda:
        CONDA_ENV
    shell:
        "lla report figure fig3 --profile {wildcards.profile} --results {params.results}"
        " --out {output.png} > {log} 2>&1"


rule figure:
    """Figs. 1, 2, 4 (positives drawn on images) and 5 (predictions vs GT)."""
    input:
        results=lambda wc: lla_figures.figure_inputs(config, wc.profile, wc.figure,
                                                     layout.results(wc.profile).root),
        data=lambda wc: lla_figures.figure_data(config, wc.profile, wc.figure),
    output:
        RESULTS.figure("{figure}"),
    wildcard_constraints:
        figure="fig[1245]",  # fig3: rule figure_levels
    log:
        layout.log("{profile}", "figures", "{figure}"),
    params:
        settings=lambda wc: figure_settings(wc.profile),  # edits redraw
        results=lambda wc: str(layout.results(wc.profile).root),
    conda:
        CONDA_ENV
    shell:
        "lla report figure {wildcards.figure} --profile {wildcards.profile}"
        " --results {params.results} --out {output} > {log} 2>&1"
