import { useQuery } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { type MessageKey, useI18n } from '../i18n';
import { parseMoney } from '../lib/money';
import { useAction } from '../lib/query';
import { Callout, Loading, SelectField, TextField, useDebounced } from '../ui/components';
import { FormDialog } from '../ui/resource';
import { itemsOf, type Outlet, type Preview, portalApi, type Rules } from './api';
import {
  type BreakdownLine,
  CAMPAIGN_KINDS,
  CAMPAIGN_STATUSES,
  type Campaign,
  type CampaignBody,
  type CampaignDraft,
  type DraftErrors,
  EFFECT_FIELDS,
  toBody,
  toDraft,
} from './campaignForm';

const WEEKDAYS = [1, 2, 3, 4, 5, 6, 7];

/** Create or edit a campaign: every field of the contract, with the sample receipt's breakdown beside it. */
export function CampaignDialog({ campaign, onClose }: { campaign: Campaign | null; onClose: () => void }) {
  const { t } = useI18n();
  const [draft, setDraft] = useState<CampaignDraft>(() => toDraft(campaign));
  const [isTouched, setTouched] = useState(false);
  const set =
    <K extends keyof CampaignDraft>(key: K) =>
    (value: CampaignDraft[K]) =>
      setDraft((d) => ({ ...d, [key]: value }));
  const { body, errors } = toBody(draft);
  const outlets = useQuery({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
  });
  const programme = useQuery({
    queryKey: ['programme'],
    queryFn: () => portalApi.get<{ rules: Rules }>('/programme'),
  });
  const rules = programme.data?.rules ?? null;
  const save = useAction(
    (input: CampaignBody) =>
      campaign ? portalApi.patch(`/campaigns/${campaign.id}`, input) : portalApi.post('/campaigns', input),
    { invalidate: [['campaigns']], success: t('common.saved'), onSuccess: onClose },
  );
  const errorText = (field: string) => {
    const code = errors[field];
    return isTouched && code ? t(`campaigns.error.${code}` as MessageKey) : undefined;
  };
  const submit = () => {
    setTouched(true);
    if (body) save.mutate(body);
  };
  const tiers = rules?.tiers ?? [];
  return (
    <FormDialog
      title={campaign ? t('campaigns.editTitle') : t('campaigns.add')}
      onClose={onClose}
      busy={save.isPending}
      onSubmit={submit}
      wide
    >
      <div className="campaign-form">
        <div className="stack">
          <TextField
            label={t('common.name')}
            value={draft.name}
            onChange={set('name')}
            error={errorText('name')}
            autoFocus
          />
          <div className="grid-2">
            <SelectField
              label={t('campaigns.kind')}
              value={draft.kind}
              onChange={(kind) => set('kind')(kind as CampaignDraft['kind'])}
              options={CAMPAIGN_KINDS.map((k) => ({
                value: k,
                label: t(`campaigns.kind.${k}` as MessageKey),
              }))}
            />
            <SelectField
              label={t('common.status')}
              value={draft.status}
              onChange={(status) => set('status')(status as CampaignDraft['status'])}
              options={CAMPAIGN_STATUSES.map((s) => ({
                value: s,
                label: t(`campaigns.status.${s}` as MessageKey),
              }))}
            />
          </div>
          <p className="small muted">{t(`campaigns.kindHint.${draft.kind}` as MessageKey)}</p>
          <div className="grid-2">
            {EFFECT_FIELDS[draft.kind].map((field) => (
              <TextField
                key={field}
                label={t(`campaigns.effect.${field}` as MessageKey)}
                inputMode={field === 'multiplierBp' ? 'decimal' : 'numeric'}
                value={draft.effect[field]}
                onChange={(value) => setDraft((d) => ({ ...d, effect: { ...d.effect, [field]: value } }))}
                error={errorText(`effect.${field}`)}
              />
            ))}
          </div>
          <Section title={t('campaigns.periodTitle')} hint={t('campaigns.periodHint')}>
            <div className="grid-2">
              <TextField
                label={t('campaigns.startsAt')}
                type="datetime-local"
                value={draft.startsAt}
                onChange={set('startsAt')}
              />
              <TextField
                label={t('campaigns.endsAt')}
                type="datetime-local"
                value={draft.endsAt}
                onChange={set('endsAt')}
                error={errorText('endsAt')}
              />
            </div>
            <label className="checkbox">
              <input
                type="checkbox"
                checked={draft.hasSchedule}
                onChange={(e) => set('hasSchedule')(e.target.checked)}
              />
              {t('campaigns.hasSchedule')}
            </label>
            {draft.hasSchedule ? (
              <>
                <fieldset className="weekdays" aria-label={t('campaigns.weekdays')}>
                  {WEEKDAYS.map((day) => (
                    <label key={day} className="checkbox">
                      <input
                        type="checkbox"
                        checked={draft.weekdays.includes(day)}
                        onChange={(e) =>
                          set('weekdays')(
                            e.target.checked
                              ? [...draft.weekdays, day]
                              : draft.weekdays.filter((d) => d !== day),
                          )
                        }
                      />
                      {t(`campaigns.weekday.${day}` as MessageKey)}
                    </label>
                  ))}
                </fieldset>
                {errorText('weekdays') ? <span className="field-error">{errorText('weekdays')}</span> : null}
                <div className="grid-2">
                  <TextField
                    label={t('campaigns.from')}
                    type="time"
                    value={draft.from}
                    onChange={set('from')}
                    error={errorText('from')}
                  />
                  <TextField
                    label={t('campaigns.to')}
                    type="time"
                    value={draft.to}
                    onChange={set('to')}
                    error={errorText('to')}
                  />
                </div>
                <p className="small muted">{t('campaigns.scheduleHint')}</p>
              </>
            ) : null}
          </Section>
          <Section title={t('campaigns.conditionsTitle')} hint={t('campaigns.conditionsHint')}>
            <Choices
              legend={t('campaigns.outlets')}
              options={itemsOf(outlets.data).map((o) => ({ value: o.id, label: o.name }))}
              selected={draft.outletIds}
              onChange={set('outletIds')}
              none={t('campaigns.allOutlets')}
            />
            <Choices
              legend={t('campaigns.tiers')}
              options={tiers.map((tier) => ({ value: tier.name, label: tier.name }))}
              selected={draft.tiers}
              onChange={set('tiers')}
              none={t('campaigns.allTiers')}
            />
            <div className="grid-2">
              <TextField
                label={t('campaigns.categories')}
                hint={t('campaigns.categoriesHint')}
                value={draft.categories}
                onChange={set('categories')}
              />
              <TextField
                label={t('campaigns.minTotal')}
                suffix="₽"
                inputMode="decimal"
                value={draft.minTotal}
                onChange={set('minTotal')}
                error={errorText('minTotal')}
              />
            </div>
          </Section>
          <Section title={t('campaigns.limitsTitle')}>
            <div className="grid-2">
              <TextField
                label={t('campaigns.perCustomer')}
                hint={t('campaigns.perCustomerHint')}
                inputMode="numeric"
                value={draft.perCustomer}
                onChange={set('perCustomer')}
                error={errorText('perCustomer')}
              />
              <TextField
                label={t('campaigns.totalPoints')}
                hint={t('campaigns.totalPointsHint')}
                inputMode="numeric"
                value={draft.totalPoints}
                onChange={set('totalPoints')}
                error={errorText('totalPoints')}
              />
              <TextField
                label={t('campaigns.bonusLifetimeDays')}
                hint={t('campaigns.bonusLifetimeHint')}
                inputMode="numeric"
                value={draft.bonusLifetimeDays}
                onChange={set('bonusLifetimeDays')}
                error={errorText('bonusLifetimeDays')}
              />
              <TextField
                label={t('campaigns.priority')}
                hint={t('campaigns.priorityHint')}
                inputMode="numeric"
                value={draft.priority}
                onChange={set('priority')}
                error={errorText('priority')}
              />
            </div>
            <label className="checkbox">
              <input
                type="checkbox"
                checked={draft.exclusive}
                onChange={(e) => set('exclusive')(e.target.checked)}
              />
              {t('campaigns.exclusive')}
            </label>
          </Section>
        </div>
        <SamplePreview
          body={body}
          errors={errors}
          campaignId={campaign?.id ?? null}
          rules={rules}
          outlets={itemsOf(outlets.data)}
        />
      </div>
    </FormDialog>
  );
}

/** A titled group of fields. */
function Section({ title, hint, children }: { title: string; hint?: string; children: ReactNode }) {
  return (
    <fieldset className="form-section">
      <legend>{title}</legend>
      {hint ? <p className="small muted">{hint}</p> : null}
      <div className="stack">{children}</div>
    </fieldset>
  );
}

/** Checkboxes choosing some of a few values; none chosen means any. */
function Choices({
  legend,
  options,
  selected,
  onChange,
  none,
}: {
  legend: string;
  options: Array<{ value: string; label: string }>;
  selected: string[];
  onChange: (values: string[]) => void;
  none: string;
}) {
  if (options.length === 0) return null;
  return (
    <fieldset className="field" style={{ border: 'none', padding: 0, margin: 0 }}>
      <legend className="field-label">{legend}</legend>
      <span className="field-hint">{none}</span>
      <div className="row" style={{ gap: 12, marginTop: 6 }}>
        {options.map((option) => (
          <label key={option.value} className="checkbox">
            <input
              type="checkbox"
              checked={selected.includes(option.value)}
              onChange={(e) =>
                onChange(
                  e.target.checked ? [...selected, option.value] : selected.filter((v) => v !== option.value),
                )
              }
            />
            {option.label}
          </label>
        ))}
      </div>
    </fieldset>
  );
}

/**
 * The breakdown of a sample receipt's points as the server computes it (/programme/preview, the
 * quote's campaign engine): the campaign as the form stands is sent as a draft and applied as if
 * active, at the chosen moment (now by default) and outlet; nothing is saved.
 */
function SamplePreview({
  body,
  errors,
  campaignId,
  rules,
  outlets,
}: {
  body: CampaignBody | null;
  errors: DraftErrors;
  campaignId: string | null;
  rules: Rules | null;
  outlets: Outlet[];
}) {
  const i18n = useI18n();
  const { t } = i18n;
  const [total, setTotal] = useState('1000');
  const [category, setCategory] = useState('');
  const [tier, setTier] = useState('');
  const [outletId, setOutletId] = useState('');
  const [moment, setMoment] = useState('');
  const totalMinor = parseMoney(total);
  const tierSpend = rules?.tiers.find((x) => x.name === tier)?.minSpend ?? 0;
  const at = moment ? new Date(moment) : null;
  const request =
    totalMinor === null || (at !== null && Number.isNaN(at.getTime()))
      ? null
      : JSON.stringify({
          receipt: {
            total: totalMinor,
            ...(category.trim() ? { items: [{ category: category.trim(), amount: totalMinor }] } : {}),
          },
          tierSpend,
          ...(outletId ? { outletId } : {}),
          ...(at ? { at: at.toISOString() } : {}),
          ...(body ? { campaign: campaignId ? { ...body, id: campaignId } : body } : {}),
        });
  const debounced = useDebounced(request, 300);
  const preview = useQuery({
    queryKey: ['campaign-preview', debounced],
    queryFn: ({ signal }) =>
      portalApi.request<Preview>('POST', '/programme/preview', {
        body: JSON.parse(debounced ?? '{}'),
        signal,
      }),
    enabled: debounced !== null,
    placeholderData: (previous) => previous,
  });
  const result = preview.data;
  const lines = result?.earnBreakdown ?? [];
  // This campaign's line: the draft (unsaved: no id) or the stored campaign it edits.
  const isOwn = (line: BreakdownLine) =>
    body !== null && line.source === 'campaign' && line.campaignId === campaignId;
  const isPurchaseKind = body === null || body.kind === 'multiplier' || body.kind === 'bonus_points';
  return (
    <aside className="campaign-preview stack" aria-label={t('campaigns.previewTitle')}>
      <div>
        <strong>{t('campaigns.previewTitle')}</strong>
        <p className="small muted">{t('campaigns.previewHint')}</p>
      </div>
      <TextField
        label={t('preview.total')}
        suffix="₽"
        inputMode="decimal"
        value={total}
        onChange={setTotal}
      />
      <TextField label={t('campaigns.sampleCategory')} value={category} onChange={setCategory} />
      {rules && rules.tiers.length > 0 ? (
        <SelectField
          label={t('campaigns.sampleTier')}
          value={tier}
          onChange={setTier}
          options={[{ value: '', label: '—' }, ...rules.tiers.map((x) => ({ value: x.name, label: x.name }))]}
        />
      ) : null}
      {outlets.length > 0 ? (
        <SelectField
          label={t('campaigns.sampleOutlet')}
          value={outletId}
          onChange={setOutletId}
          options={[{ value: '', label: '—' }, ...outlets.map((o) => ({ value: o.id, label: o.name }))]}
        />
      ) : null}
      <TextField
        label={t('campaigns.sampleMoment')}
        hint={t('campaigns.sampleMomentHint')}
        type="datetime-local"
        value={moment}
        onChange={setMoment}
      />
      {preview.isError ? (
        <Callout tone="danger">{preview.error.message}</Callout>
      ) : !result ? (
        <Loading />
      ) : (
        <div aria-live="polite" data-testid="campaign-preview">
          <table className="breakdown">
            <tbody>
              {lines.map((line) => {
                const own = isOwn(line) ? ' breakdown-own' : '';
                return (
                  <tr key={`${line.source}-${line.campaignId ?? line.name}`}>
                    <td className={`breakdown-cell${own}`}>
                      {line.source === 'base' ? t('campaigns.baseLine') : line.name}
                      <div className="small muted">
                        {own
                          ? t('campaigns.thisCampaign')
                          : t(`campaigns.source.${line.source}` as MessageKey)}
                      </div>
                    </td>
                    <td className={`breakdown-cell breakdown-num${own}`}>+{i18n.num(line.points)}</td>
                  </tr>
                );
              })}
            </tbody>
            <tfoot>
              <tr>
                <td className="breakdown-total">{t('campaigns.previewTotal')}</td>
                <td className="breakdown-total breakdown-num" data-testid="campaign-preview-total">
                  {i18n.points(result.earnPoints)}
                </td>
              </tr>
            </tfoot>
          </table>
          {!isPurchaseKind ? (
            <p className="small muted">{t(`campaigns.kindHint.${body.kind}` as MessageKey)}</p>
          ) : body !== null && !lines.some(isOwn) ? (
            <p className="small muted" data-testid="campaign-preview-none">
              {t('campaigns.previewNotApplied')}
            </p>
          ) : null}
          {body === null && Object.keys(errors).length > 0 ? (
            <p className="small muted">{t('preview.fixErrors')}</p>
          ) : null}
        </div>
      )}
    </aside>
  );
}
