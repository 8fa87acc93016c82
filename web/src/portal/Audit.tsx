import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useI18n } from '../i18n';
import { Badge, Button, Card, EmptyState, ErrorState, Loading, PageHeader } from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { type AuditEntry, portalApi } from './api';

/** Who changed what, with the state before and after. */
export function AuditPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const [open, setOpen] = useState<string | null>(null);
  const log = useInfiniteQuery({
    queryKey: ['audit'],
    queryFn: ({ pageParam }) =>
      portalApi.get<{ items: AuditEntry[]; nextCursor?: string | number | null }>('/audit-log', {
        limit: 50,
        before: pageParam,
      }),
    initialPageParam: '' as string | number,
    getNextPageParam: (last) => {
      if (last.nextCursor) return last.nextCursor;
      if (last.nextCursor === undefined && last.items.length === 50)
        return last.items[last.items.length - 1]?.id;
      return undefined;
    },
  });
  const rows = log.data?.pages.flatMap((page) => page.items) ?? [];
  const columns: Array<Column<AuditEntry>> = [
    {
      key: 'action',
      header: t('audit.action'),
      primary: true,
      render: (e) => (
        <span className="row" style={{ gap: 8 }}>
          <code>{e.action}</code>
          <Badge>{e.entityType}</Badge>
        </span>
      ),
    },
    { key: 'actor', header: t('audit.actor'), render: (e) => e.actor },
    {
      key: 'ip',
      header: t('audit.ip'),
      render: (e) => (e.ip ? <span className="mono small">{e.ip}</span> : ''),
    },
    {
      key: 'date',
      header: t('common.date'),
      render: (e) => <span className="nowrap">{i18n.dateTime(e.createdAt)}</span>,
    },
    {
      key: 'more',
      header: '',
      actions: true,
      render: (e) =>
        e.before !== null || e.after !== null ? (
          <Button
            size="sm"
            variant="ghost"
            aria-expanded={open === String(e.id)}
            onClick={() => setOpen(open === String(e.id) ? null : String(e.id))}
          >
            {open === String(e.id) ? t('audit.hide') : t('audit.changes')}
          </Button>
        ) : null,
    },
  ];
  return (
    <div className="stack-lg">
      <PageHeader title={t('audit.title')} subtitle={t('audit.subtitle')} />
      <Card padded={false}>
        {log.isError ? (
          <ErrorState error={log.error} onRetry={() => log.refetch()} />
        ) : log.isPending ? (
          <Loading />
        ) : rows.length === 0 ? (
          <EmptyState icon="audit" title={t('audit.empty')} />
        ) : (
          <>
            <DataTable
              columns={columns}
              rows={rows}
              rowKey={(e) => String(e.id)}
              expanded={(e) =>
                open === String(e.id) ? (
                  <div className="grid-2" style={{ width: '100%', textAlign: 'left' }}>
                    <div>
                      <div className="field-label">{t('audit.before')}</div>
                      <pre className="json">{JSON.stringify(e.before, null, 2)}</pre>
                    </div>
                    <div>
                      <div className="field-label">{t('audit.after')}</div>
                      <pre className="json">{JSON.stringify(e.after, null, 2)}</pre>
                    </div>
                  </div>
                ) : null
              }
            />
            {log.hasNextPage ? (
              <div className="pager">
                <span />
                <Button size="sm" busy={log.isFetchingNextPage} onClick={() => log.fetchNextPage()}>
                  {t('common.loadMore')}
                </Button>
              </div>
            ) : null}
          </>
        )}
      </Card>
    </div>
  );
}
