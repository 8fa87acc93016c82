import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { type MessageKey, useI18n } from '../i18n';
import { daysAgoIn } from '../lib/dates';
import { useAction } from '../lib/query';
import { useResource } from '../lib/resource';
import { TimeSeriesChart } from '../ui/charts';
import {
  Badge,
  Button,
  Card,
  ErrorState,
  Kpi,
  Loading,
  PageHeader,
  RowActions,
  Segmented,
} from '../ui/components';
import type { Column } from '../ui/DataTable';
import { AddButton, ResourceConfirm, ResourceTable } from '../ui/resource';
import { type Me, portalApi } from './api';
import { CampaignDialog } from './CampaignDialog';
import type { Campaign, CampaignStatus, Simulation } from './campaignForm';
import { useCan } from './permissions';

const STATUS_TONE: Record<CampaignStatus, 'success' | 'warning' | 'default' | 'info'> = {
  active: 'success',
  paused: 'warning',
  draft: 'info',
  ended: 'default',
};

/** The merchant's IANA time zone (schedules and simulated days use it). */
export function useMerchantTimeZone(): string {
  const me = useQuery({ queryKey: ['me'], queryFn: () => portalApi.get<Me>('/me') });
  return me.data?.merchant?.timeZone ?? 'Europe/Moscow';
}

/** Campaigns: the list with status, create and edit with a preview, simulate, pause and resume. */
export function CampaignsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const canWrite = useCan('campaigns:write');
  const campaigns = useResource<Campaign, { campaigns: Campaign[] }>({
    queryKey: ['campaigns'],
    queryFn: () => portalApi.get<{ campaigns: Campaign[] }>('/campaigns'),
    rows: (data) => data.campaigns,
    confirm: (c) => portalApi.delete(`/campaigns/${c.id}`),
    confirmed: t('campaigns.deleted'),
  });
  const [simulating, setSimulating] = useState<Campaign | null>(null);
  const setStatus = useAction(
    (input: { id: string; status: CampaignStatus }) =>
      portalApi.patch(`/campaigns/${input.id}`, { status: input.status }),
    { invalidate: [['campaigns']], success: t('common.saved') },
  );
  const columns: Array<Column<Campaign>> = [
    {
      key: 'name',
      header: t('common.name'),
      primary: true,
      render: (c) => (
        <div>
          <div>{c.name}</div>
          <div className="small muted">{t(`campaigns.kind.${c.kind}` as MessageKey)}</div>
        </div>
      ),
    },
    {
      key: 'status',
      header: t('common.status'),
      render: (c) => (
        <span data-testid="campaign-status">
          <Badge tone={STATUS_TONE[c.status]}>{t(`campaigns.status.${c.status}` as MessageKey)}</Badge>
        </span>
      ),
    },
    { key: 'when', header: t('campaigns.when'), render: (c) => <CampaignWhen campaign={c} /> },
    { key: 'priority', header: t('campaigns.priority'), numeric: true, render: (c) => i18n.num(c.priority) },
    {
      key: 'granted',
      header: t('campaigns.granted'),
      numeric: true,
      render: (c) =>
        c.limits.totalPoints
          ? `${i18n.num(c.grantedPoints ?? 0)} / ${i18n.num(c.limits.totalPoints)}`
          : i18n.num(c.grantedPoints ?? 0),
    },
    {
      key: 'actions',
      header: '',
      actions: true,
      render: (c) => (
        <div className="row">
          <Button size="sm" icon="history" onClick={() => setSimulating(c)}>
            {t('campaigns.simulate')}
          </Button>
          {canWrite && c.status === 'active' ? (
            <Button size="sm" onClick={() => setStatus.mutate({ id: c.id, status: 'paused' })}>
              {t('campaigns.pause')}
            </Button>
          ) : null}
          {canWrite && (c.status === 'paused' || c.status === 'draft') ? (
            <Button size="sm" onClick={() => setStatus.mutate({ id: c.id, status: 'active' })}>
              {c.status === 'paused' ? t('campaigns.resume') : t('campaigns.launch')}
            </Button>
          ) : null}
          {canWrite ? (
            <RowActions onEdit={() => campaigns.edit(c)} onDelete={() => campaigns.ask(c)} />
          ) : null}
        </div>
      ),
    },
  ];
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('campaigns.title')}
        subtitle={canWrite ? t('campaigns.subtitle') : t('campaigns.readOnly')}
        actions={
          <AddButton canWrite={canWrite} label={t('campaigns.add')} onClick={() => campaigns.edit('new')} />
        }
      />
      <Card padded={false}>
        <ResourceTable
          resource={campaigns}
          columns={columns}
          empty={{ icon: 'campaigns', title: t('campaigns.empty'), hint: t('campaigns.emptyHint') }}
        />
      </Card>
      {simulating ? (
        <SimulationCard key={simulating.id} campaign={simulating} onClose={() => setSimulating(null)} />
      ) : null}
      {campaigns.editing ? (
        <CampaignDialog campaign={campaigns.edited} onClose={campaigns.closeEdit} />
      ) : null}
      <ResourceConfirm
        resource={campaigns}
        title={t('campaigns.deleteTitle')}
        text={(c) => t('campaigns.deleteText', { name: c.name })}
      />
    </div>
  );
}

/** The campaign's period and weekly window in a line. */
function CampaignWhen({ campaign }: { campaign: Campaign }) {
  const i18n = useI18n();
  const { t } = i18n;
  const parts: string[] = [];
  if (campaign.startsAt || campaign.endsAt) {
    parts.push(
      `${campaign.startsAt ? i18n.date(campaign.startsAt) : '…'} – ${campaign.endsAt ? i18n.date(campaign.endsAt) : '…'}`,
    );
  }
  const schedule = campaign.schedule;
  if (schedule) {
    const days =
      schedule.weekdays.length === 7
        ? t('campaigns.everyDay')
        : schedule.weekdays.map((d) => t(`campaigns.weekday.${d}` as MessageKey)).join(', ');
    parts.push(schedule.from === schedule.to ? days : `${days} ${schedule.from}–${schedule.to}`);
  }
  return parts.length > 0 ? (
    <span className="small">{parts.join(' · ')}</span>
  ) : (
    <span className="muted">{t('campaigns.always')}</span>
  );
}

/** What the campaign would have added over the last 30 or 90 days of real purchases. */
function SimulationCard({ campaign, onClose }: { campaign: Campaign; onClose: () => void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const zone = useMerchantTimeZone();
  const [days, setDays] = useState<'30' | '90'>('30');
  const period = { from: daysAgoIn(Number(days) - 1, zone), to: daysAgoIn(0, zone) };
  const simulation = useQuery({
    queryKey: ['campaign-simulation', campaign.id, period.from, period.to],
    queryFn: () => portalApi.post<Simulation>(`/campaigns/${campaign.id}/simulate`, period),
    staleTime: 60_000,
  });
  const result = simulation.data;
  return (
    <Card
      title={t('campaigns.simulationTitle', { name: campaign.name })}
      subtitle={t('campaigns.simulationHint', { from: i18n.date(period.from), to: i18n.date(period.to) })}
      actions={
        <div className="row">
          <Segmented
            label={t('campaigns.period')}
            value={days}
            onChange={setDays}
            options={[
              { value: '30', label: t('campaigns.days30') },
              { value: '90', label: t('campaigns.days90') },
            ]}
          />
          <Button size="sm" variant="ghost" onClick={onClose}>
            {t('common.close')}
          </Button>
        </div>
      }
    >
      {simulation.isError ? (
        <ErrorState error={simulation.error} onRetry={() => simulation.refetch()} />
      ) : !result ? (
        <Loading />
      ) : (
        <div className="stack" data-testid="campaign-simulation">
          <div className="grid-auto grid-kpi">
            <Kpi label={t('campaigns.simPurchases')} value={i18n.num(result.purchases)} />
            <Kpi label={t('campaigns.simCustomers')} value={i18n.num(result.customers)} />
            <Kpi
              label={t('campaigns.simExtraPoints')}
              value={<span data-testid="simulation-extra-points">{i18n.num(result.extraPoints)}</span>}
            />
            <Kpi wide label={t('campaigns.simExtraValue')} value={i18n.money(result.extraPointsValueMinor)} />
          </div>
          <TimeSeriesChart
            title={t('campaigns.simChart')}
            labels={result.byDay.map((d) => d.date)}
            mode="bars"
            formatValue={(v) => i18n.num(v)}
            formatLabel={i18n.shortDate}
            series={[
              {
                name: t('campaigns.simExtraPoints'),
                color: 'var(--chart-1)',
                values: result.byDay.map((d) => Number(d.extraPoints ?? 0)),
              },
            ]}
          />
        </div>
      )}
    </Card>
  );
}
