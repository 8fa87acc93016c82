import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { dayStartIso } from '../lib/dates';
import { useAction } from '../lib/query';
import {
  Badge,
  Button,
  Callout,
  Card,
  ConfirmDialog,
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
import {
  adminApi,
  type MerchantRow,
  type OutboxEvent,
  type OutboxEventDetail,
  type OutboxState,
} from './api';

type Status = 'dead' | 'pending' | 'processing' | 'delivered';

function statusTone(status: string): 'success' | 'warning' | 'danger' | 'default' {
  if (status === 'delivered') return 'success';
  if (status === 'dead') return 'danger';
  return 'warning';
}

/** The outbox: counts, pause/resume (all or per merchant), events by status, retry one, replay dead. */
export function OutboxPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const state = useQuery({
    queryKey: ['outbox'],
    queryFn: () => adminApi.get<OutboxState>('/outbox'),
    refetchInterval: 3000,
  });
  const merchants = useQuery({
    queryKey: ['merchants', 'all'],
    queryFn: () => adminApi.get<{ items: MerchantRow[] }>('/merchants', { limit: 200 }),
  });
  const merchantName = (id: string | null) =>
    id ? (merchants.data?.items.find((m) => m.id === id)?.name ?? id.slice(0, 8)) : '—';
  const [confirmGlobal, setConfirmGlobal] = useState(false);
  const pause = useAction(
    (merchantId?: string) => adminApi.post('/outbox/pause', merchantId ? { merchantId } : {}),
    {
      invalidate: [['outbox']],
      success: t('outbox.paused'),
      onSuccess: () => setConfirmGlobal(false),
    },
  );
  const resume = useAction(
    (merchantId?: string) => adminApi.post('/outbox/resume', merchantId ? { merchantId } : {}),
    {
      invalidate: [['outbox']],
      success: t('outbox.resumed'),
    },
  );
  const counts = state.data?.counts;
  const paused = state.data?.paused;

  return (
    <div className="stack-lg">
      <PageHeader title={t('outbox.title')} subtitle={t('outbox.subtitle')} />
      {state.isError ? (
        <Card>
          <ErrorState error={state.error} onRetry={() => state.refetch()} />
        </Card>
      ) : !counts || !paused ? (
        <Card>
          <Loading />
        </Card>
      ) : (
        <>
          <div className="grid-auto grid-kpi">
            <Kpi
              label={t('outbox.status.pending')}
              value={<span data-testid="outbox-count-pending">{i18n.num(counts.pending)}</span>}
            />
            <Kpi
              label={t('outbox.status.processing')}
              value={<span data-testid="outbox-count-processing">{i18n.num(counts.processing)}</span>}
            />
            <Kpi
              label={t('outbox.status.delivered')}
              value={<span data-testid="outbox-count-delivered">{i18n.num(counts.delivered)}</span>}
            />
            <Kpi
              label={t('outbox.status.dead')}
              value={<span data-testid="outbox-count-dead">{i18n.num(counts.dead)}</span>}
              hint={t('outbox.deadTotal', { n: i18n.num(counts.deadTotal) })}
            />
          </div>
          <div className="grid-2" style={{ alignItems: 'start' }}>
            <Card
              title={t('outbox.delivery')}
              actions={
                paused.global ? (
                  <Badge tone="danger">{t('outbox.globalPaused')}</Badge>
                ) : (
                  <Badge tone="success">{t('outbox.running')}</Badge>
                )
              }
            >
              <div className="stack">
                {paused.global ? (
                  <Callout tone="warning">{t('outbox.globalPausedHint')}</Callout>
                ) : (
                  <p className="muted small">{t('outbox.runningHint')}</p>
                )}
                <div className="row">
                  {paused.global ? (
                    <Button
                      variant="primary"
                      busy={resume.isPending}
                      onClick={() => resume.mutate(undefined)}
                    >
                      {t('outbox.resumeAll')}
                    </Button>
                  ) : (
                    <Button variant="danger" onClick={() => setConfirmGlobal(true)}>
                      {t('outbox.pauseAll')}
                    </Button>
                  )}
                </div>
                <MerchantPause
                  merchants={merchants.data?.items ?? []}
                  pausedIds={paused.merchants.map((m) => m.id)}
                  onPause={(id) => pause.mutate(id)}
                  busy={pause.isPending}
                />
                {paused.merchants.length > 0 ? (
                  <div className="stack" style={{ gap: 8 }}>
                    <div className="field-label">{t('outbox.pausedMerchants')}</div>
                    {paused.merchants.map((m) => (
                      <div key={m.id} className="row-between">
                        <span>
                          {m.name} <span className="small muted">· {i18n.dateTime(m.pausedAt)}</span>
                        </span>
                        <Button size="sm" onClick={() => resume.mutate(m.id)}>
                          {t('outbox.resume')}
                        </Button>
                      </div>
                    ))}
                  </div>
                ) : null}
              </div>
            </Card>
            <ReplayCard merchants={merchants.data?.items ?? []} />
          </div>
        </>
      )}
      <EventsCard merchants={merchants.data?.items ?? []} merchantName={merchantName} />
      {confirmGlobal ? (
        <ConfirmDialog
          title={t('outbox.pauseAllTitle')}
          text={t('outbox.pauseAllText')}
          confirmLabel={t('outbox.pauseAll')}
          busy={pause.isPending}
          onConfirm={() => pause.mutate(undefined)}
          onCancel={() => setConfirmGlobal(false)}
        />
      ) : null}
    </div>
  );
}

function MerchantPause({
  merchants,
  pausedIds,
  onPause,
  busy,
}: {
  merchants: MerchantRow[];
  pausedIds: string[];
  onPause: (id: string) => void;
  busy: boolean;
}) {
  const { t } = useI18n();
  const candidates = merchants.filter((m) => !pausedIds.includes(m.id));
  const [merchantId, setMerchantId] = useState('');
  return (
    <div className="row" style={{ alignItems: 'flex-end' }}>
      <div className="grow">
        <SelectField
          label={t('outbox.pauseMerchant')}
          value={merchantId}
          onChange={setMerchantId}
          options={[
            { value: '', label: t('outbox.chooseMerchant') },
            ...candidates.map((m) => ({ value: m.id, label: m.name })),
          ]}
        />
      </div>
      <Button disabled={!merchantId} busy={busy} onClick={() => onPause(merchantId)}>
        {t('outbox.pause')}
      </Button>
    </div>
  );
}

function ReplayCard({ merchants }: { merchants: MerchantRow[] }) {
  const { t } = useI18n();
  const [merchantId, setMerchantId] = useState('');
  const [since, setSince] = useState(() => new Date(Date.now() - 7 * 86_400_000).toISOString().slice(0, 10));
  const [until, setUntil] = useState('');
  const replay = useAction(
    () =>
      adminApi.post<{ replayed: number }>('/outbox/replay', {
        merchantId,
        since: dayStartIso(since),
        ...(until ? { until: dayStartIso(until) } : {}),
      }),
    {
      invalidate: [['outbox'], ['outbox-events']],
      success: (output) => t('outbox.replayed', { n: output.replayed }),
    },
  );
  return (
    <Card title={t('outbox.replayTitle')} subtitle={t('outbox.replayHint')}>
      <div className="stack">
        <SelectField
          label={t('outbox.merchant')}
          value={merchantId}
          onChange={setMerchantId}
          options={[
            { value: '', label: t('outbox.chooseMerchant') },
            ...merchants.map((m) => ({ value: m.id, label: m.name })),
          ]}
        />
        <div className="grid-2">
          <TextField label={t('common.from')} type="date" value={since} onChange={setSince} />
          <TextField
            label={t('outbox.until')}
            type="date"
            value={until}
            onChange={setUntil}
            hint={t('outbox.untilHint')}
          />
        </div>
        <div>
          <Button
            variant="primary"
            icon="refresh"
            busy={replay.isPending}
            disabled={!merchantId || !since}
            onClick={() => replay.mutate()}
          >
            {t('outbox.replay')}
          </Button>
        </div>
      </div>
    </Card>
  );
}

function EventsCard({
  merchants,
  merchantName,
}: {
  merchants: MerchantRow[];
  merchantName: (id: string | null) => string;
}) {
  const i18n = useI18n();
  const { t } = i18n;
  const [status, setStatus] = useState<Status>('dead');
  const [merchantId, setMerchantId] = useState('');
  const [open, setOpen] = useState<number | null>(null);
  const events = useQuery({
    queryKey: ['outbox-events', status, merchantId],
    queryFn: () =>
      adminApi.get<{ items: OutboxEvent[] }>('/outbox/events', { status, merchantId, limit: 100 }),
    refetchInterval: 5000,
  });
  const retry = useAction((id: number) => adminApi.post(`/outbox/events/${id}/retry`), {
    invalidate: [['outbox'], ['outbox-events']],
    success: t('outbox.retried'),
  });
  const columns: Array<Column<OutboxEvent>> = [
    {
      key: 'type',
      header: t('outbox.event'),
      primary: true,
      render: (e) => (
        <span className="row" style={{ gap: 8 }}>
          <span className="muted mono small">#{e.id}</span>
          <code>{e.type}</code>
        </span>
      ),
    },
    { key: 'merchant', header: t('outbox.merchant'), render: (e) => merchantName(e.merchantId) },
    {
      key: 'target',
      header: t('outbox.target'),
      render: (e) => <span className="small">{e.target ?? '—'}</span>,
    },
    {
      key: 'status',
      header: t('common.status'),
      render: (e) => (
        <Badge tone={statusTone(e.status)}>{t(`outbox.status.${e.status}` as 'outbox.status.dead')}</Badge>
      ),
    },
    { key: 'attempts', header: t('webhooks.attempts'), numeric: true, render: (e) => i18n.num(e.attempts) },
    {
      key: 'error',
      header: t('webhooks.lastError'),
      render: (e) =>
        e.lastError ? (
          <span className="small negative" style={{ overflowWrap: 'anywhere' }}>
            {e.lastError}
          </span>
        ) : (
          ''
        ),
    },
    {
      key: 'date',
      header: t('common.date'),
      render: (e) => <span className="nowrap">{i18n.dateTime(e.deadAt ?? e.createdAt)}</span>,
    },
    {
      key: 'actions',
      header: '',
      actions: true,
      render: (e) => (
        <div className="row">
          <Button
            size="sm"
            variant="ghost"
            aria-expanded={open === e.id}
            onClick={() => setOpen(open === e.id ? null : e.id)}
          >
            {open === e.id ? t('audit.hide') : t('outbox.details')}
          </Button>
          {e.status === 'dead' || e.status === 'pending' ? (
            <Button size="sm" onClick={() => retry.mutate(e.id)}>
              {t('outbox.retry')}
            </Button>
          ) : null}
        </div>
      ),
    },
  ];
  const items = events.data?.items ?? [];
  return (
    <Card
      title={t('outbox.events')}
      padded={false}
      actions={
        <Segmented<Status>
          label={t('common.status')}
          value={status}
          onChange={setStatus}
          options={(['dead', 'pending', 'processing', 'delivered'] as const).map((s) => ({
            value: s,
            label: t(`outbox.status.${s}`),
          }))}
        />
      }
    >
      <div className="card-body" style={{ paddingBottom: 12 }}>
        <SelectField
          label={t('outbox.merchant')}
          value={merchantId}
          onChange={setMerchantId}
          options={[
            { value: '', label: t('outbox.allMerchants') },
            ...merchants.map((m) => ({ value: m.id, label: m.name })),
          ]}
        />
      </div>
      {events.isError ? (
        <ErrorState error={events.error} onRetry={() => events.refetch()} />
      ) : events.isPending ? (
        <Loading />
      ) : items.length === 0 ? (
        <EmptyState icon="outbox" title={t('outbox.noEvents')} />
      ) : (
        <DataTable
          columns={columns}
          rows={items}
          rowKey={(e) => String(e.id)}
          expanded={(e) => (open === e.id ? <EventDetail id={e.id} /> : null)}
        />
      )}
    </Card>
  );
}

function EventDetail({ id }: { id: number }) {
  const i18n = useI18n();
  const { t } = i18n;
  const event = useQuery({
    queryKey: ['outbox-event', id],
    queryFn: () => adminApi.get<OutboxEventDetail>(`/outbox/events/${id}`),
  });
  if (event.isError) return <ErrorState error={event.error} />;
  if (!event.data) return <Loading />;
  return (
    <div className="grid-2" style={{ width: '100%', textAlign: 'left' }}>
      <div>
        <div className="field-label">{t('outbox.payload')}</div>
        <pre className="json">{JSON.stringify(event.data.payload, null, 2)}</pre>
      </div>
      <div>
        <div className="field-label">{t('outbox.attemptLog')}</div>
        {event.data.attemptLog.length === 0 ? (
          <p className="small muted">{t('outbox.noAttempts')}</p>
        ) : (
          <div className="attempt-log">
            {event.data.attemptLog.map((a) => (
              <div key={a.attempt}>
                <div className="row" style={{ gap: 8 }}>
                  <strong>#{a.attempt}</strong>
                  <Badge tone={a.result === 'ok' ? 'success' : 'danger'}>{a.result}</Badge>
                  {a.statusCode ? <span className="mono">HTTP {a.statusCode}</span> : null}
                  <span className="muted">{i18n.dateTime(a.startedAt)}</span>
                </div>
                {a.error ? <pre className="negative">{a.error}</pre> : null}
              </div>
            ))}
          </div>
        )}
      </div>
    </div>
  );
}
