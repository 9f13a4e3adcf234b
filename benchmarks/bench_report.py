"""train_bench's output: the plain table it prints and the Markdown table docs/performance.md quotes."""

from __future__ import annotations


def _si(x: float, unit: str) -> str:
    for div, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {p}{unit}"
    return f"{x:.2f} {unit}"


def _mib(mem: dict | None, key: str) -> str:
    value = (mem or {}).get(key)
    return "-" if value is None else f"{value:.0f} MiB"


def render(res: dict) -> str:
    env = res["environment"]
    out = [
        f"train_bench: {env['device_name']} ({env['device']}), torch {env['torch']}, {env['threads']} threads "
        f"({env['cpus_usable']} CPUs usable), git {env['git']}",
        f"{res.get('arch', 'dcgan')}, {res['imsize']} px, conv dim {res['conv_dim']}, batch {res['batch']}, {res['timed_steps_per_arm']} timed samples of "
        f"{res['iterations_per_timed_step']} iteration(s) per arm after {res['warmup']} warm-up, arms alternated; "
        f"load average {env.get('loadavg_start')} → {env.get('loadavg_end')}",
        f"sagan settings: {res['sagan_settings']}",
        "",
        f"{'arm':<22} {'img/s median':>12} {'IQR':>17} {'s/iter':>8} {'CPU s':>7} {'FLOP/iter':>12} {'FLOP/s':>13} "
        f"{'of peak':>8} {'peak mem':>10} {'step mem':>10}",
    ]
    for name, a in res["arms"].items():
        frac = a.get("fraction_of_bf16_peak", a["fraction_of_fp32_peak"])
        out.append(
            f"{name:<22} {a['img_per_s_median']:>12.2f} {a['img_per_s_q1']:>8.2f}–{a['img_per_s_q3']:<8.2f} "
            f"{a['step_s_median']:>8.3f} {a['cpu_s_median']:>7.2f} {_si(a['flops_per_step'], 'FLOP'):>12} {_si(a['flop_per_s'], 'FLOP/s'):>13} "
            f"{frac:>8.1%} {_mib(a.get('memory'), 'peak_mib'):>10} {_mib(a.get('memory'), 'step_mib'):>10}"
        )
    peaks = ", ".join(f"{k} {_si(v['flop_per_s'], 'FLOP/s')} ({v['n']})" for k, v in res["matmul_peak"].items())
    out += [
        "",
        _ratio_line(res),
        f"matmul peak: {peaks}; 'of peak' is against the "
        f"{'bf16 matmul' if 'bf16_matmul' in res['matmul_peak'] else 'best fp32'} figure",
        f"memory: {next((a['memory']['method'] for a in res['arms'].values() if a.get('memory')), 'not measured')}; "
        "step mem = peak - before",
        "params: " + "; ".join(f"{k} G {v['G']:,} D {v['D']:,}" for k, v in res["params"].items()),
        "forward FLOPs per image: " + "; ".join(f"{k} G {_si(v['G'], 'FLOP')} D {_si(v['D'], 'FLOP')}"
                                              for k, v in res["forward_flops_per_image"].items()),
    ]
    if "loader" in res:
        ld = res["loader"]
        out.append(f"loader alone: {ld['img_per_s']:,.0f} img/s = {ld['headroom']:.0f}× the step's demand of "
                   f"{ld['step_demand_img_per_s']:.1f} img/s ({ld['cache']})")
    for row in res.get("sweep", []):
        out.append(f"sweep: sagan batch {row['batch']}: {row['img_per_s_median']:.1f} img/s "
                   f"(IQR {row['img_per_s_q1']:.1f}–{row['img_per_s_q3']:.1f}), peak {_mib(row.get('memory'), 'peak_mib')}")
    for name, ops in res.get("profile", {}).items():
        out += ["", f"profile of one iteration, {name} (self time per op):"]
        out += [f"  {o['op']:<48} {o['self_ms']:>10.1f} ms {o['calls']:>6} calls" for o in ops]
    return "\n".join(out)


def render_markdown(res: dict) -> str:
    """The arms as a Markdown table (what docs/performance.md quotes)."""
    env = res["environment"]
    lines = [
        f"{env['device_name']} ({env['device']}), {env['threads']} threads, torch {env['torch']}, "
        f"{res.get('arch', 'dcgan')}, {res['imsize']} px, batch {res['batch']}, {res['timed_steps_per_arm']}×{res['iterations_per_timed_step']} "
        f"timed iterations per arm, load average {env.get('loadavg_start')} → {env.get('loadavg_end')}",
        "",
        "| arm | img/s (median) | IQR | s/iter | CPU s/iter | GFLOP/iter | achieved FLOP/s | of peak | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, a in res["arms"].items():
        frac = a.get("fraction_of_bf16_peak", a["fraction_of_fp32_peak"])
        lines.append(
            f"| {name} | {a['img_per_s_median']:.1f} | {a['img_per_s_q1']:.1f}–{a['img_per_s_q3']:.1f} | "
            f"{a['step_s_median']:.3f} | {a['cpu_s_median']:.2f} | {a['flops_per_step'] / 1e9:.1f} | "
            f"{_si(a['flop_per_s'], 'FLOP/s')} | {frac:.0%} | {_mib(a.get('memory'), 'peak_mib')} |")
    if res.get("ratio") is None:
        lines += ["", _ratio_line(res)]
    else:
        lines += ["", f"sagan / naive: **{res['ratio']:.2f}×** (ratio of medians), {res['ratio_paired_median']:.2f}× "
                      f"(median of pairs), {res['ratio_cpu_time']:.2f}× (process CPU time)"]
    return "\n".join(lines)


def _ratio_line(res: dict) -> str:
    if res.get("ratio") is None:
        return f"sagan / naive: no naive arm for --arch {res.get('arch')} (the port has only the dcgan model)"
    return (f"sagan / naive: {res['ratio']:.2f}× (ratio of medians), {res['ratio_paired_median']:.2f}× (median of pairs), "
            f"{res['ratio_cpu_time']:.2f}× in process CPU time per iteration")

