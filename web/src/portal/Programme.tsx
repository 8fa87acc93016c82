import { useQuery } from '@tanstack/react-query';
import { type ReactNode, type RefObject, useEffect, useMemo, useRef, useState } from 'react';
import { useI18n } from '../i18n';
import { formatMoneyInput, formatPercentInput, parseMoney, parsePercentBp } from '../lib/money';
import { useAction } from '../lib/query';
import {
  Button,
  Callout,
  Card,
  ErrorState,
  Loading,
  PageHeader,
  SelectField,
  TextField,
  useDebounced,
} from '../ui/components';
import { type Me, type Preview, portalApi, type Rules } from './api';
import { useCan } from './permissions';

interface TierDraft {
  key: number;
  name: string;
  minSpend: string;
  earnRate: string;
}

interface Draft {
  earnRate: string;
  maxRedeem: string;
  pointValue: string;
  isLifetimeLimited: boolean;
  lifetimeDays: string;
  pendingDays: string;
  tierWindowDays: string;
  tiers: TierDraft[];
  excluded: string;
}

let tierKey = 1;

function toDraft(rules: Rules): Draft {
  return {
    earnRate: formatPercentInput(rules.earnRateBp),
    maxRedeem: formatPercentInput(rules.maxRedeemShareBp),
    pointValue: formatMoneyInput(rules.pointValueMinor),
    isLifetimeLimited: rules.pointsLifetimeDays !== null,
    lifetimeDays: String(rules.pointsLifetimeDays ?? 365),
    pendingDays: String(rules.pendingDays),
    tierWindowDays: String(rules.tierWindowDays),
    tiers: rules.tiers.map((tier) => ({
      key: tierKey++,
      name: tier.name,
      minSpend: formatMoneyInput(tier.minSpend),
      earnRate: formatPercentInput(tier.earnRateBp),
    })),
    excluded: rules.excludedCategories.join(', '),
  };
}

type Errors = Partial<Record<string, string>>;

function parseDays(text: string, min: number, max: number): number | null {
  if (!/^\d{1,4}$/.test(text.trim())) return null;
  const n = Number(text.trim());
  return n >= min && n <= max ? n : null;
}

/** Turns the form into rules, or lists what is wrong with which field. */
function fromDraft(
  draft: Draft,
  t: (
    key:
      | 'programme.invalidPercent'
      | 'programme.invalidMoney'
      | 'programme.invalidDays'
      | 'programme.tierOrder'
      | 'programme.tierName',
  ) => string,
): { rules: Rules | null; errors: Errors } {
  const errors: Errors = {};
  const earnRateBp = parsePercentBp(draft.earnRate);
  if (earnRateBp === null || earnRateBp > 10_000) errors.earnRate = t('programme.invalidPercent');
  const maxRedeemShareBp = parsePercentBp(draft.maxRedeem);
  if (maxRedeemShareBp === null || maxRedeemShareBp > 10_000)
    errors.maxRedeem = t('programme.invalidPercent');
  const pointValueMinor = parseMoney(draft.pointValue);
  if (pointValueMinor === null || pointValueMinor < 1) errors.pointValue = t('programme.invalidMoney');
  const lifetime = draft.isLifetimeLimited ? parseDays(draft.lifetimeDays, 1, 3650) : null;
  if (draft.isLifetimeLimited && lifetime === null) errors.lifetimeDays = t('programme.invalidDays');
  const pendingDays = parseDays(draft.pendingDays, 0, 365);
  if (pendingDays === null) errors.pendingDays = t('programme.invalidDays');
  const tierWindowDays = parseDays(draft.tierWindowDays, 1, 3650);
  if (tierWindowDays === null) errors.tierWindowDays = t('programme.invalidDays');
  const tiers = draft.tiers.map((tier, i) => {
    const minSpend = parseMoney(tier.minSpend);
    const rate = parsePercentBp(tier.earnRate);
    if (!tier.name.trim()) errors[`tier.${i}.name`] = t('programme.tierName');
    if (minSpend === null) errors[`tier.${i}.minSpend`] = t('programme.invalidMoney');
    if (rate === null || rate > 10_000) errors[`tier.${i}.earnRate`] = t('programme.invalidPercent');
    const previous = i > 0 ? parseMoney(draft.tiers[i - 1]?.minSpend ?? '') : null;
    if (minSpend !== null && previous !== null && minSpend <= previous)
      errors[`tier.${i}.minSpend`] = t('programme.tierOrder');
    return { name: tier.name.trim(), minSpend: minSpend ?? 0, earnRateBp: rate ?? 0 };
  });
  const excludedCategories = [
    ...new Set(
      draft.excluded
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean),
    ),
  ];
  if (Object.keys(errors).length > 0) return { rules: null, errors };
  return {
    rules: {
      earnRateBp: earnRateBp ?? 0,
      maxRedeemShareBp: maxRedeemShareBp ?? 0,
      pointValueMinor: pointValueMinor ?? 100,
      pointsLifetimeDays: lifetime,
      pendingDays: pendingDays ?? 0,
      tierWindowDays: tierWindowDays ?? 365,
      tiers,
      excludedCategories,
    },
    errors,
  };
}

/** Programme settings with a live preview of what a sample receipt earns under the edited rules. */
export function ProgrammePage() {
  const { t } = useI18n();
  const programme = useQuery({
    queryKey: ['programme'],
    queryFn: () => portalApi.get<{ rules: Rules }>('/programme'),
  });
  return (
    <div className="stack-lg">
      <PageHeader title={t('programme.title')} subtitle={t('programme.subtitle')} />
      <TimeZoneCard />
      {programme.isError ? (
        <Card>
          <ErrorState error={programme.error} onRetry={() => programme.refetch()} />
        </Card>
      ) : programme.data ? (
        <ProgrammeForm rules={programme.data.rules} />
      ) : (
        <Card>
          <Loading />
        </Card>
      )}
    </div>
  );
}

/** The IANA zones the browser knows, or a few common ones where it cannot list them. */
function timeZones(): string[] {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['Europe/Moscow', 'Europe/Kaliningrad', 'Europe/Samara', 'Asia/Yekaterinburg', 'UTC'];
  }
}

/** The merchant's time zone: schedules, birthdays, dashboards and bot dates use it. */
function TimeZoneCard() {
  const { t } = useI18n();
  const canWrite = useCan('merchant:write');
  const me = useQuery({ queryKey: ['me'], queryFn: () => portalApi.get<Me>('/me') });
  const current = me.data?.merchant?.timeZone ?? 'Europe/Moscow';
  const save = useAction((timeZone: string) => portalApi.patch('/merchant', { timeZone }), {
    invalidate: [['me']],
    success: t('programme.timeZoneSaved'),
  });
  const zones = timeZones();
  return (
    <Card>
      <div style={{ maxWidth: 420 }}>
        <SelectField
          label={t('programme.timeZone')}
          hint={t('programme.timeZoneHint')}
          value={save.isPending ? (save.variables ?? current) : current}
          onChange={(zone) => save.mutate(zone)}
          disabled={!canWrite || !me.data || save.isPending}
          options={(zones.includes(current) ? zones : [current, ...zones]).map((zone) => ({
            value: zone,
            label: zone,
          }))}
        />
      </div>
    </Card>
  );
}

function ProgrammeForm({ rules }: { rules: Rules }) {
  const { t } = useI18n();
  const canWrite = useCan('programme:write');
  const [draft, setDraft] = useState<Draft>(() => toDraft(rules));
  const [saved, setSaved] = useState(() => JSON.stringify(rules));
  const { rules: parsed, errors } = useMemo(() => fromDraft(draft, t), [draft, t]);
  const isDirty = parsed !== null && JSON.stringify(parsed) !== saved;
  const set =
    <K extends keyof Draft>(key: K) =>
    (value: Draft[K]) =>
      setDraft((d) => ({ ...d, [key]: value }));
  const setTier = (index: number, patch: Partial<TierDraft>) =>
    setDraft((d) => ({
      ...d,
      tiers: d.tiers.map((tier, i) => (i === index ? { ...tier, ...patch } : tier)),
    }));

  const save = useAction((next: Rules) => portalApi.put<{ rules: Rules }>('/programme', { rules: next }), {
    invalidate: [['programme'], ['preview']],
    success: t('programme.saved'),
    onSuccess: (output) => setSaved(JSON.stringify(output.rules)),
  });
  const disabled = !canWrite;

  return (
    <div className="layout-side">
      <form
        className="stack-lg"
        onSubmit={(event) => {
          event.preventDefault();
          if (parsed) save.mutate(parsed);
        }}
      >
        {!canWrite ? <Callout>{t('programme.readOnly')}</Callout> : null}
        <Card title={t('programme.earning')} subtitle={t('programme.earningHint')}>
          <div className="form-grid">
            <TextField
              label={t('programme.earnRate')}
              suffix="%"
              inputMode="decimal"
              name="earnRate"
              value={draft.earnRate}
              onChange={set('earnRate')}
              error={errors.earnRate}
              hint={t('programme.earnRateHint')}
              disabled={disabled}
            />
            <TextField
              label={t('programme.maxRedeem')}
              suffix="%"
              inputMode="decimal"
              name="maxRedeem"
              value={draft.maxRedeem}
              onChange={set('maxRedeem')}
              error={errors.maxRedeem}
              hint={t('programme.maxRedeemHint')}
              disabled={disabled}
            />
            <TextField
              label={t('programme.pointValue')}
              suffix="₽"
              inputMode="decimal"
              name="pointValue"
              value={draft.pointValue}
              onChange={set('pointValue')}
              error={errors.pointValue}
              hint={t('programme.pointValueHint')}
              disabled={disabled}
            />
          </div>
        </Card>
        <Card title={t('programme.lifecycle')} subtitle={t('programme.lifecycleHint')}>
          <div className="form-grid">
            <div className="field">
              <label className="checkbox">
                <input
                  type="checkbox"
                  checked={draft.isLifetimeLimited}
                  disabled={disabled}
                  onChange={(e) => set('isLifetimeLimited')(e.target.checked)}
                />
                {t('programme.expire')}
              </label>
              {draft.isLifetimeLimited ? (
                <TextField
                  label={t('programme.lifetimeDays')}
                  inputMode="numeric"
                  value={draft.lifetimeDays}
                  onChange={set('lifetimeDays')}
                  error={errors.lifetimeDays}
                  disabled={disabled}
                />
              ) : (
                <span className="field-hint">{t('programme.neverExpire')}</span>
              )}
            </div>
            <TextField
              label={t('programme.pendingDays')}
              inputMode="numeric"
              value={draft.pendingDays}
              onChange={set('pendingDays')}
              error={errors.pendingDays}
              hint={t('programme.pendingDaysHint')}
              disabled={disabled}
            />
            <TextField
              label={t('programme.excluded')}
              value={draft.excluded}
              onChange={set('excluded')}
              hint={t('programme.excludedHint')}
              placeholder="tobacco, gift_cards"
              disabled={disabled}
            />
          </div>
        </Card>
        <Card
          title={t('programme.tiers')}
          subtitle={t('programme.tiersHint')}
          actions={
            canWrite ? (
              <Button
                size="sm"
                icon="plus"
                onClick={() =>
                  set('tiers')([
                    ...draft.tiers,
                    { key: tierKey++, name: '', minSpend: '', earnRate: draft.earnRate },
                  ])
                }
              >
                {t('programme.addTier')}
              </Button>
            ) : null
          }
        >
          <div className="stack">
            <div className="form-grid">
              <TextField
                label={t('programme.tierWindowDays')}
                inputMode="numeric"
                value={draft.tierWindowDays}
                onChange={set('tierWindowDays')}
                error={errors.tierWindowDays}
                hint={t('programme.tierWindowHint')}
                disabled={disabled}
              />
            </div>
            {draft.tiers.length === 0 ? <p className="muted small">{t('programme.noTiers')}</p> : null}
            {draft.tiers.map((tier, i) => (
              <div key={tier.key} className="row" style={{ alignItems: 'flex-start' }}>
                <div className="form-grid grow">
                  <TextField
                    label={t('programme.tierName')}
                    value={tier.name}
                    onChange={(v) => setTier(i, { name: v })}
                    error={errors[`tier.${i}.name`]}
                    disabled={disabled}
                  />
                  <TextField
                    label={t('programme.tierMinSpend')}
                    suffix="₽"
                    inputMode="decimal"
                    value={tier.minSpend}
                    onChange={(v) => setTier(i, { minSpend: v })}
                    error={errors[`tier.${i}.minSpend`]}
                    disabled={disabled}
                  />
                  <TextField
                    label={t('programme.tierRate')}
                    suffix="%"
                    inputMode="decimal"
                    value={tier.earnRate}
                    onChange={(v) => setTier(i, { earnRate: v })}
                    error={errors[`tier.${i}.earnRate`]}
                    disabled={disabled}
                  />
                </div>
                {canWrite ? (
                  <Button
                    variant="ghost"
                    size="sm"
                    aria-label={t('programme.removeTier')}
                    style={{ marginTop: 26 }}
                    onClick={() => set('tiers')(draft.tiers.filter((_, k) => k !== i))}
                  >
                    ×
                  </Button>
                ) : null}
              </div>
            ))}
          </div>
        </Card>
        {canWrite ? (
          <div className="row">
            <Button type="submit" variant="primary" busy={save.isPending} disabled={!parsed || !isDirty}>
              {t('common.save')}
            </Button>
            <Button
              disabled={!isDirty && parsed !== null}
              onClick={() => setDraft(toDraft(JSON.parse(saved) as Rules))}
            >
              {t('common.reset')}
            </Button>
            {isDirty ? <span className="muted small">{t('programme.unsaved')}</span> : null}
          </div>
        ) : null}
      </form>
      <div className="sticky-side">
        <PreviewPanel rules={parsed} />
      </div>
    </div>
  );
}

/** Whether an element is (partly) on screen. */
function useIsVisible(ref: RefObject<HTMLElement | null>): boolean {
  const [isVisible, setVisible] = useState(true);
  useEffect(() => {
    const element = ref.current;
    if (!element || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => setVisible(entries.some((e) => e.isIntersecting)));
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref]);
  return isVisible;
}

function PreviewPanel({ rules }: { rules: Rules | null }) {
  const i18n = useI18n();
  const { t } = i18n;
  const [total, setTotal] = useState('1000');
  const [redeem, setRedeem] = useState('0');
  const [available, setAvailable] = useState('500');
  const [tierSpend, setTierSpend] = useState('0');
  const cardRef = useRef<HTMLDivElement>(null);
  const isCardVisible = useIsVisible(cardRef);
  const receiptTotal = parseMoney(total);
  const redeemPoints = /^\d{1,9}$/.test(redeem.trim()) ? Number(redeem) : null;
  const availablePoints = /^\d{1,9}$/.test(available.trim()) ? Number(available) : null;
  const spend = parseMoney(tierSpend);
  const input =
    rules && receiptTotal !== null && redeemPoints !== null && availablePoints !== null && spend !== null
      ? { rules, receipt: { total: receiptTotal }, redeemPoints, availablePoints, tierSpend: spend }
      : null;
  const debounced = useDebounced(input ? JSON.stringify(input) : null, 300);
  const preview = useQuery({
    queryKey: ['preview', debounced],
    queryFn: ({ signal }) =>
      portalApi.request<Preview>('POST', '/programme/preview', {
        body: JSON.parse(debounced ?? '{}'),
        signal,
      }),
    enabled: debounced !== null,
    placeholderData: (previous) => previous,
    staleTime: 60_000,
  });
  const isStale = debounced !== (input ? JSON.stringify(input) : null) || preview.isFetching;
  const result = preview.data;
  const tierName = result?.tier ? (typeof result.tier === 'string' ? result.tier : result.tier.name) : null;
  const figure = (label: string, value: ReactNode, testId?: string) => (
    <div className="preview-figure">
      <span className="muted">{label}</span>
      <strong data-testid={testId}>{value}</strong>
    </div>
  );
  return (
    <div ref={cardRef}>
      <Card title={t('preview.title')} subtitle={t('preview.subtitle')}>
        <div className="stack">
          <div className="grid-2">
            <TextField
              label={t('preview.total')}
              suffix="₽"
              inputMode="decimal"
              value={total}
              onChange={setTotal}
            />
            <TextField label={t('preview.redeem')} inputMode="numeric" value={redeem} onChange={setRedeem} />
            <TextField
              label={t('preview.available')}
              inputMode="numeric"
              value={available}
              onChange={setAvailable}
            />
            <TextField
              label={t('preview.tierSpend')}
              suffix="₽"
              inputMode="decimal"
              value={tierSpend}
              onChange={setTierSpend}
            />
          </div>
          {!rules ? (
            <Callout tone="warning">{t('preview.fixErrors')}</Callout>
          ) : preview.isError ? (
            <Callout tone="danger">{preview.error.message}</Callout>
          ) : result ? (
            <div aria-live="polite" style={{ opacity: isStale ? 0.6 : 1, transition: 'opacity .15s' }}>
              <div className="preview-hero">
                <div className="muted small">{t('preview.earns')}</div>
                <div className="value" data-testid="preview-earn">
                  {i18n.points(result.earnPoints)}
                </div>
                <div className="muted small">
                  {t('preview.atRate', { rate: i18n.percentBp(result.earnRateBp) })}
                  {tierName ? ` · ${t('preview.tier', { tier: tierName })}` : ''}
                </div>
              </div>
              {figure(t('preview.eligible'), i18n.money(result.eligibleAmount))}
              {figure(t('preview.maxRedeem'), i18n.points(result.maxRedeemPoints))}
              {figure(t('preview.redeemed'), i18n.points(result.redeemPoints))}
              {figure(t('preview.discount'), i18n.money(result.discount))}
              {figure(t('preview.payable'), i18n.money(result.payable), 'preview-payable')}
            </div>
          ) : (
            <Loading />
          )}
        </div>
      </Card>
      {result && rules && !isCardVisible ? (
        // On narrow screens the preview sits below the form: a bar keeps the answer in sight while typing.
        <div className="preview-bar" aria-hidden="true">
          <span className="muted small">
            {t('preview.barLabel', { total: i18n.money(receiptTotal ?? 0) })}
          </span>
          <strong>{i18n.points(result.earnPoints)}</strong>
        </div>
      ) : null}
    </div>
  );
}
