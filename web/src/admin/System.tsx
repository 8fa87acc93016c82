import { useQuery } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { useI18n } from '../i18n';
import { Badge, Button, Card, EmptyState, ErrorState, Kpi, Loading, PageHeader } from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { adminApi, type SystemState } from './api';

function Health({ tone, title, detail }: { tone: 'ok' | 'bad' | 'warn'; title: string; detail: ReactNode }) {
  return (
    <div className="health">
      <span className={`health-dot health-${tone}`} aria-hidden="true" />
      <div>
        <div style={{ fontWeight: 600 }}>{title}</div>
        <div className="small muted">{detail}</div>
      </div>
    </div>
  );
}

/** Postgres, Redis, workers and the last alert, refreshed every 10 s. */
export function SystemPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const system = useQuery({
    queryKey: ['system'],
    queryFn: () => adminApi.get<SystemState>('/system'),
    refetchInterval: 10_000,
  });
  const data = system.data;
  type Worker = SystemState['workers'][number];
  const workerColumns: Array<Column<Worker>> = [
    {
      key: 'id',
      header: t('system.worker'),
      primary: true,
      render: (w) => <span className="mono small">{w.workerId}</span>,
    },
    { key: 'host', header: t('system.host'), render: (w) => w.hostname },
    { key: 'seen', header: t('system.lastSeen'), render: (w) => i18n.dateTime(w.lastSeenAt) },
    {
      key: 'alive',
      header: t('common.status'),
      render: (w) =>
        w.isAlive ? (
          <Badge tone="success">{t('system.alive')}</Badge>
        ) : (
          <Badge tone="danger">{t('system.gone')}</Badge>
        ),
    },
  ];
  const counts = data?.outbox ?? null;
  const alert = data?.lastAlert ?? null;
  const redisState = data?.redis.state ?? '';
  return (
    <div className="stack-lg">
      <PageHeader
        title={t('system.title')}
        subtitle={t('system.subtitle')}
        actions={
          <Button icon="refresh" busy={system.isFetching} onClick={() => system.refetch()}>
            {t('common.refresh')}
          </Button>
        }
      />
      {system.isError ? (
        <Card>
          <ErrorState error={system.error} onRetry={() => system.refetch()} />
        </Card>
      ) : !data ? (
        <Card>
          <Loading />
        </Card>
      ) : (
        <>
          <div className="grid-3">
            <Card>
              <Health
                tone={data.postgres.ok ? 'ok' : 'bad'}
                title={`PostgreSQL · ${data.postgres.ok ? t('system.ok') : t('system.down')}`}
                detail={[
                  data.postgres.version,
                  data.postgres.latencyMs !== null
                    ? t('system.latency', { ms: data.postgres.latencyMs })
                    : null,
                ]
                  .filter(Boolean)
                  .join(' · ')}
              />
            </Card>
            <Card>
              <Health
                tone={redisState === 'ok' ? 'ok' : redisState === 'disabled' ? 'warn' : 'bad'}
                title={`Redis · ${t(`system.redis.${redisState}` as 'system.redis.ok')}`}
                detail={redisState === 'ok' ? t('system.redisOk') : t('system.redisOptional')}
              />
            </Card>
            <Card>
              <Health
                tone={data.workers.some((w) => w.isAlive) ? 'ok' : 'bad'}
                title={t('system.workers', { n: data.workers.filter((w) => w.isAlive).length })}
                detail={data.workers.some((w) => w.isAlive) ? t('system.workersOk') : t('system.noWorkers')}
              />
            </Card>
          </div>
          {counts ? (
            <div className="grid-auto grid-kpi">
              <Kpi label={t('outbox.status.pending')} value={i18n.num(counts.pending)} />
              <Kpi label={t('outbox.status.processing')} value={i18n.num(counts.processing)} />
              <Kpi
                label={t('outbox.status.dead')}
                value={i18n.num(counts.dead)}
                hint={t('outbox.deadTotal', { n: i18n.num(counts.deadTotal) })}
              />
              <Kpi
                label={t('nav.switches')}
                value={
                  data.switches.maintenance.enabled ? (
                    <Badge tone="danger">{t('switches.maintenance')}</Badge>
                  ) : data.switches.readOnly.enabled ? (
                    <Badge tone="warning">{t('switches.readOnly')}</Badge>
                  ) : (
                    <Badge tone="success">{t('switches.normal')}</Badge>
                  )
                }
              />
            </div>
          ) : null}
          <div className="grid-2" style={{ alignItems: 'start' }}>
            <Card title={t('system.workersTitle')} padded={false}>
              {data.workers.length === 0 ? (
                <EmptyState icon="system" title={t('system.noWorkers')} hint={t('system.noWorkersHint')} />
              ) : (
                <DataTable columns={workerColumns} rows={data.workers} rowKey={(w) => w.workerId} />
              )}
            </Card>
            <Card title={t('system.lastAlert')}>
              {alert ? (
                <div className="stack" style={{ gap: 6 }}>
                  <div className="row" style={{ gap: 8 }}>
                    <code>{alert.name}</code>
                    {alert.firing ? (
                      <Badge tone="danger">{t('system.firing')}</Badge>
                    ) : (
                      <Badge tone="success">{t('system.resolved')}</Badge>
                    )}
                  </div>
                  <div className="small muted">{i18n.dateTime(alert.lastSentAt)}</div>
                </div>
              ) : (
                <p className="muted">{t('system.noAlerts')}</p>
              )}
            </Card>
          </div>
        </>
      )}
    </div>
  );
}
