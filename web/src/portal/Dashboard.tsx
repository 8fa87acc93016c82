import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { type MessageKey, useI18n } from '../i18n';
import { daysAgoIn, timeZone } from '../lib/dates';
import { TimeSeriesChart } from '../ui/charts';
import {
  Card,
  EmptyState,
  ErrorState,
  Kpi,
  Loading,
  PageHeader,
  Segmented,
  SelectField,
  TextField,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { type Dashboard, itemsOf, type Outlet, portalApi } from './api';
import { useMerchantTimeZone } from './Campaigns';

type Preset = '7' | '30' | '90' | 'custom';

/** Figures, charts and the by-outlet table for a date range (and optionally one outlet). */
export function DashboardPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const merchantZone = useMerchantTimeZone();
  // Days are the merchant's unless the user picks another zone (the API's default is the merchant's).
  const [zone, setZone] = useState('');
  const daysAgo = (days: number) => daysAgoIn(days, zone || merchantZone);
  const [preset, setPreset] = useState<Preset>('30');
  const [from, setFrom] = useState(daysAgo(29));
  const [to, setTo] = useState(daysAgo(0));
  const [outletId, setOutletId] = useState('');
  const range = preset === 'custom' ? { from, to } : { from: daysAgo(Number(preset) - 1), to: daysAgo(0) };
  const browserZone = timeZone();
  const isRangeValid = range.from <= range.to;
  const outlets = useQuery({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
  });
  const dashboard = useQuery({
    queryKey: ['dashboard', range.from, range.to, outletId, zone],
    queryFn: () =>
      portalApi.get<Dashboard>('/dashboard', { ...range, outletId, ...(zone ? { tz: zone } : {}) }),
    enabled: isRangeValid,
    placeholderData: (previous) => previous,
  });
  const data = dashboard.data;
  const days = data?.byDay ?? [];
  const labels = days.map((d) => d.date);
  const totals = data?.totals;

  type OutletRow = Dashboard['byOutlet'][number];
  const outletColumns: Array<Column<OutletRow>> = [
    {
      key: 'name',
      header: t('dashboard.outlet'),
      primary: true,
      render: (r) => r.name ?? t('dashboard.noOutlet'),
    },
    {
      key: 'purchases',
      header: t('dashboard.purchases'),
      numeric: true,
      render: (r) => i18n.num(r.purchases),
    },
    { key: 'revenue', header: t('dashboard.revenue'), numeric: true, render: (r) => i18n.money(r.revenue) },
    {
      key: 'earned',
      header: t('dashboard.pointsEarned'),
      numeric: true,
      render: (r) => i18n.num(r.pointsEarned),
    },
    {
      key: 'redeemed',
      header: t('dashboard.pointsRedeemed'),
      numeric: true,
      render: (r) => i18n.num(r.pointsRedeemed),
    },
  ];

  type CampaignRow = Dashboard['campaigns'][number];
  const campaignColumns: Array<Column<CampaignRow>> = [
    {
      key: 'name',
      header: t('dashboard.campaign'),
      primary: true,
      render: (r) => (
        <>
          {r.name ?? t('dashboard.deletedCampaign')}
          {r.kind ? <div className="small muted">{t(`campaigns.kind.${r.kind}` as MessageKey)}</div> : null}
        </>
      ),
    },
    {
      key: 'points',
      header: t('dashboard.campaignPoints'),
      numeric: true,
      render: (r) => i18n.num(r.points),
    },
    {
      key: 'purchases',
      header: t('dashboard.purchases'),
      numeric: true,
      render: (r) => i18n.num(r.purchases),
    },
    {
      key: 'customers',
      header: t('dashboard.campaignCustomers'),
      numeric: true,
      render: (r) => i18n.num(r.customers),
    },
    { key: 'revenue', header: t('dashboard.revenue'), numeric: true, render: (r) => i18n.money(r.revenue) },
  ];

  return (
    <div className="stack-lg">
      <PageHeader title={t('dashboard.title')} subtitle={t('dashboard.subtitle')} />
      <div className="card card-body filters">
        <div className="field" style={{ flex: '0 1 auto' }}>
          <span className="field-label">{t('dashboard.period')}</span>
          <Segmented<Preset>
            label={t('dashboard.period')}
            value={preset}
            onChange={setPreset}
            options={[
              { value: '7', label: t('dashboard.days7') },
              { value: '30', label: t('dashboard.days30') },
              { value: '90', label: t('dashboard.days90') },
              { value: 'custom', label: t('dashboard.custom') },
            ]}
          />
        </div>
        {preset === 'custom' ? (
          <>
            <TextField label={t('common.from')} type="date" value={from} onChange={setFrom} />
            <TextField
              label={t('common.to')}
              type="date"
              value={to}
              onChange={setTo}
              error={isRangeValid ? undefined : t('dashboard.badRange')}
            />
          </>
        ) : null}
        <SelectField
          label={t('dashboard.outlet')}
          value={outletId}
          onChange={setOutletId}
          options={[
            { value: '', label: t('dashboard.allOutlets') },
            ...itemsOf(outlets.data).map((o) => ({ value: o.id, label: o.name })),
          ]}
        />
        <SelectField
          label={t('dashboard.timeZone')}
          value={zone}
          onChange={setZone}
          options={[
            { value: '', label: t('dashboard.merchantZone', { zone: merchantZone }) },
            ...(browserZone !== merchantZone
              ? [{ value: browserZone, label: t('dashboard.browserZone', { zone: browserZone }) }]
              : []),
            ...(browserZone !== 'UTC' && merchantZone !== 'UTC' ? [{ value: 'UTC', label: 'UTC' }] : []),
          ]}
        />
      </div>

      {dashboard.isError ? (
        <Card>
          <ErrorState error={dashboard.error} onRetry={() => dashboard.refetch()} />
        </Card>
      ) : !data ? (
        <Card>
          <Loading />
        </Card>
      ) : (
        <>
          <div className="grid-auto grid-kpi" data-testid="dashboard-totals">
            <Kpi wide label={t('dashboard.revenue')} value={i18n.money(totals?.revenue)} />
            <Kpi
              label={t('dashboard.purchases')}
              value={<span data-testid="kpi-purchases">{i18n.num(totals?.purchases)}</span>}
            />
            <Kpi label={t('dashboard.pointsEarned')} value={i18n.num(totals?.pointsEarned)} />
            <Kpi label={t('dashboard.pointsRedeemed')} value={i18n.num(totals?.pointsRedeemed)} />
            <Kpi label={t('dashboard.newCustomers')} value={i18n.num(totals?.newCustomers)} />
            <Kpi label={t('dashboard.returningCustomers')} value={i18n.num(totals?.returningCustomers)} />
          </div>
          {totals && totals.purchases === 0 ? (
            <Card>
              <EmptyState icon="dashboard" title={t('dashboard.empty')} hint={t('dashboard.emptyHint')} />
            </Card>
          ) : null}
          <Card title={t('dashboard.revenueChart')} subtitle={t('dashboard.revenueChartHint')}>
            <TimeSeriesChart
              title={t('dashboard.revenueChart')}
              labels={labels}
              mode="line"
              formatValue={(v) => i18n.money(v)}
              formatAxis={(v) => i18n.moneyShort(v)}
              formatLabel={i18n.shortDate}
              series={[
                {
                  name: t('dashboard.revenue'),
                  color: 'var(--chart-1)',
                  values: days.map((d) => Number(d.revenue)),
                },
              ]}
            />
          </Card>
          <div className="grid-2">
            <Card title={t('dashboard.pointsChart')} subtitle={t('dashboard.pointsChartHint')}>
              <TimeSeriesChart
                title={t('dashboard.pointsChart')}
                labels={labels}
                mode="bars"
                formatValue={(v) => i18n.num(v)}
                formatLabel={i18n.shortDate}
                series={[
                  {
                    name: t('dashboard.pointsEarned'),
                    color: 'var(--chart-1)',
                    values: days.map((d) => Number(d.pointsEarned)),
                  },
                  {
                    name: t('dashboard.pointsRedeemed'),
                    color: 'var(--chart-2)',
                    values: days.map((d) => Number(d.pointsRedeemed)),
                  },
                ]}
              />
            </Card>
            <Card title={t('dashboard.customersChart')} subtitle={t('dashboard.customersChartHint')}>
              <TimeSeriesChart
                title={t('dashboard.customersChart')}
                labels={labels}
                mode="stacked"
                formatValue={(v) => i18n.num(v)}
                formatLabel={i18n.shortDate}
                series={[
                  {
                    name: t('dashboard.newCustomers'),
                    color: 'var(--chart-3)',
                    values: days.map((d) => Number(d.newCustomers)),
                  },
                  {
                    name: t('dashboard.returningCustomers'),
                    color: 'var(--chart-1)',
                    values: days.map((d) => Number(d.returningCustomers)),
                  },
                ]}
              />
            </Card>
          </div>
          <Card title={t('dashboard.byCampaign')} subtitle={t('dashboard.byCampaignHint')} padded={false}>
            {data.campaigns.length === 0 ? (
              <EmptyState icon="dashboard" title={t('dashboard.noCampaignData')} />
            ) : (
              <DataTable
                columns={campaignColumns}
                rows={data.campaigns}
                rowKey={(r) => r.campaignId}
                caption={t('dashboard.byCampaign')}
              />
            )}
          </Card>
          <Card title={t('dashboard.byOutlet')} padded={false}>
            {data.byOutlet.length === 0 ? (
              <EmptyState icon="outlets" title={t('dashboard.noOutletData')} />
            ) : (
              <DataTable
                columns={outletColumns}
                rows={data.byOutlet}
                rowKey={(r) => r.outletId ?? 'none'}
                caption={t('dashboard.byOutlet')}
              />
            )}
          </Card>
        </>
      )}
    </div>
  );
}
