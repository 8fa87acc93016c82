import { type PointerEvent, type RefObject, useLayoutEffect, useRef, useState } from 'react';

// Hand-written responsive SVG charts: the SVG is drawn at the container's measured width (crisp text
// at any size), with a nice-number y axis, thinned x labels and a tooltip that follows the pointer.

export interface Series {
  name: string;
  color: string;
  values: number[];
}

/** The width of an element, kept current with a ResizeObserver. */
function useWidth<T extends HTMLElement>(): [RefObject<T | null>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(0);
  useLayoutEffect(() => {
    const element = ref.current;
    if (!element) return;
    setWidth(element.clientWidth);
    const observer = new ResizeObserver((entries) => {
      const entry = entries[0];
      if (entry) setWidth(Math.floor(entry.contentRect.width));
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

/** A "nice" step (1, 2, 2.5, 5 × 10^n) so axis ticks read as round numbers. */
function niceStep(raw: number): number {
  if (raw <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

/** A chart of daily figures: grouped bars, stacked bars or lines. */
export function TimeSeriesChart({
  labels,
  series,
  mode,
  height = 240,
  formatValue,
  formatAxis,
  formatLabel,
  title,
}: {
  labels: string[];
  series: Series[];
  mode: 'bars' | 'stacked' | 'line';
  height?: number;
  formatValue: (value: number) => string;
  formatAxis?: (value: number) => string;
  formatLabel: (label: string) => string;
  title: string;
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | null>(null);
  const count = labels.length;
  const axisFormat = formatAxis ?? formatValue;
  const maxValue = Math.max(
    0,
    ...labels.map((_, i) =>
      mode === 'stacked'
        ? series.reduce((sum, s) => sum + Math.max(0, s.values[i] ?? 0), 0)
        : Math.max(0, ...series.map((s) => s.values[i] ?? 0)),
    ),
  );
  const ticks = 4;
  // Values are whole numbers (counts, points, kopecks): a step below 1 would repeat tick labels.
  const step = Math.max(1, niceStep(maxValue / ticks || 1));
  const top = step * ticks;
  const tickValues = Array.from({ length: ticks + 1 }, (_, k) => step * k);
  const axisWidth = Math.min(72, Math.max(36, axisFormat(top).length * 7 + 10));
  const pad = { left: axisWidth, right: 8, top: 10, bottom: 26 };
  const innerWidth = Math.max(0, width - pad.left - pad.right);
  const innerHeight = height - pad.top - pad.bottom;
  const band = count > 0 ? innerWidth / count : innerWidth;
  const y = (value: number) => pad.top + innerHeight - (value / top) * innerHeight;
  const xCenter = (i: number) => pad.left + band * (i + 0.5);
  const labelEvery = Math.max(1, Math.ceil(count / Math.max(1, Math.floor(innerWidth / 64))));
  const totals = series.map((s) => s.values.reduce((sum, v) => sum + v, 0));
  const summary = `${title}: ${series.map((s, i) => `${s.name} ${formatValue(totals[i] ?? 0)}`).join(', ')}`;

  const onMove = (event: PointerEvent<SVGSVGElement>) => {
    const box = event.currentTarget.getBoundingClientRect();
    const index = Math.floor((event.clientX - box.left - pad.left) / band);
    setHover(index >= 0 && index < count ? index : null);
  };

  const bars = () => {
    const groupGap = Math.min(band * 0.25, 12);
    const groupWidth = Math.max(1, band - groupGap);
    return labels.map((label, i) => {
      if (mode === 'stacked') {
        let base = 0;
        return (
          <g key={label}>
            {series.map((s) => {
              const value = Math.max(0, s.values[i] ?? 0);
              const y0 = y(base);
              base += value;
              const y1 = y(base);
              return (
                <rect
                  key={s.name}
                  x={pad.left + band * i + groupGap / 2}
                  y={y1}
                  width={groupWidth}
                  height={Math.max(0, y0 - y1)}
                  fill={s.color}
                  rx={Math.min(3, groupWidth / 4)}
                />
              );
            })}
          </g>
        );
      }
      const barWidth = groupWidth / series.length;
      return (
        <g key={label}>
          {series.map((s, k) => {
            const value = Math.max(0, s.values[i] ?? 0);
            return (
              <rect
                key={s.name}
                x={pad.left + band * i + groupGap / 2 + barWidth * k}
                y={y(value)}
                width={Math.max(1, barWidth - (series.length > 1 ? 1 : 0))}
                height={Math.max(0, y(0) - y(value))}
                fill={s.color}
                rx={Math.min(3, barWidth / 4)}
              />
            );
          })}
        </g>
      );
    });
  };

  const lines = () =>
    series.map((s) => {
      const points = s.values.map((v, i) => `${xCenter(i).toFixed(1)},${y(Math.max(0, v)).toFixed(1)}`);
      const area = `M${xCenter(0).toFixed(1)},${y(0)} L${points.join(' L')} L${xCenter(count - 1).toFixed(1)},${y(0)} Z`;
      return (
        <g key={s.name}>
          {series.length === 1 ? <path d={area} fill={s.color} opacity={0.1} /> : null}
          <polyline
            points={points.join(' ')}
            fill="none"
            stroke={s.color}
            strokeWidth={2}
            strokeLinejoin="round"
          />
          {count <= 31
            ? s.values.map((v, i) => (
                <circle
                  key={labels[i]}
                  cx={xCenter(i)}
                  cy={y(Math.max(0, v))}
                  r={hover === i ? 4 : 2.5}
                  fill={s.color}
                />
              ))
            : null}
        </g>
      );
    });

  return (
    <div className="chart" ref={ref}>
      <div className="chart-legend" aria-hidden="true">
        {series.map((s) => (
          <span key={s.name}>
            <i style={{ background: s.color }} />
            {s.name}
          </span>
        ))}
      </div>
      {width > 0 ? (
        <svg
          width={width}
          height={height}
          role="img"
          aria-label={summary}
          onPointerMove={onMove}
          onPointerLeave={() => setHover(null)}
        >
          <title>{summary}</title>
          <g className="chart-grid">
            {tickValues.map((value) => (
              <line key={value} x1={pad.left} x2={width - pad.right} y1={y(value)} y2={y(value)} />
            ))}
          </g>
          <g className="chart-axis">
            {tickValues.map((value) => (
              <text key={value} x={pad.left - 8} y={y(value) + 4} textAnchor="end">
                {axisFormat(value)}
              </text>
            ))}
            {labels.map((label, i) =>
              i % labelEvery === 0 ? (
                <text key={label} x={xCenter(i)} y={height - 6} textAnchor="middle">
                  {formatLabel(label)}
                </text>
              ) : null,
            )}
          </g>
          {hover !== null ? (
            <rect
              x={pad.left + band * hover}
              y={pad.top}
              width={band}
              height={innerHeight}
              fill="rgb(15 23 42 / 0.05)"
            />
          ) : null}
          {count > 0 ? (mode === 'line' ? lines() : bars()) : null}
        </svg>
      ) : (
        <div style={{ height }} />
      )}
      {hover !== null && labels[hover] !== undefined ? (
        <div
          className="chart-tooltip"
          style={{ left: Math.min(Math.max(xCenter(hover), 80), width - 80), top: pad.top + 48 }}
        >
          <div style={{ fontWeight: 600, marginBottom: 4 }}>{formatLabel(labels[hover] ?? '')}</div>
          {series.map((s) => (
            <div key={s.name}>
              <i style={{ background: s.color }} />
              {s.name}: {formatValue(s.values[hover] ?? 0)}
            </div>
          ))}
        </div>
      ) : null}
    </div>
  );
}

/** A thin progress bar (tier progress). */
export function ProgressBar({ value, max, label }: { value: number; max: number; label: string }) {
  const share = max > 0 ? Math.min(1, Math.max(0, value / max)) : 1;
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(share * 100)}
    >
      <div className="progress-fill" style={{ width: `${share * 100}%` }} />
    </div>
  );
}
