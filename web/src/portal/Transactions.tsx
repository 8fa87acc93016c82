import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { useI18n } from '../i18n';
import { daysAgo, timeZone } from '../lib/dates';
import {
  Badge,
  Button,
  Card,
  EmptyState,
  ErrorState,
  Loading,
  PageHeader,
  SelectField,
  TextField,
  useDebounced,
} from '../ui/components';
import { type Column, DataTable } from '../ui/DataTable';
import { useToast } from '../ui/Toasts';
import { itemsOf, type Outlet, portalApi, type Transaction } from './api';
import { useCan } from './permissions';

/** A purchase's status as a coloured badge. */
export function TransactionStatus({ status }: { status: string }) {
  const { t } = useI18n();
  if (status === 'refunded') return <Badge tone="danger">{t('transactions.status.refunded')}</Badge>;
  if (status === 'partially_refunded')
    return <Badge tone="warning">{t('transactions.status.partially_refunded')}</Badge>;
  return <Badge tone="success">{t('transactions.status.committed')}</Badge>;
}

/** Purchases with filters, paged by cursor, and the same filters exported as CSV. */
export function TransactionsPage() {
  const i18n = useI18n();
  const { t } = i18n;
  const toast = useToast();
  const canExport = useCan('transactions:export');
  const [from, setFrom] = useState(daysAgo(29));
  const [to, setTo] = useState(daysAgo(0));
  const [outletId, setOutletId] = useState('');
  const [status, setStatus] = useState('');
  const [q, setQ] = useState('');
  const [isExporting, setExporting] = useState(false);
  const search = useDebounced(q.trim(), 300);
  const filters = { from, to, outletId, status, q: search, tz: timeZone() };
  const outlets = useQuery({
    queryKey: ['outlets'],
    queryFn: () => portalApi.get<{ items: Outlet[] }>('/outlets'),
  });
  const transactions = useInfiniteQuery({
    queryKey: ['transactions', filters],
    queryFn: ({ pageParam }) =>
      portalApi.get<{ items: Transaction[]; nextCursor: string | null }>('/transactions', {
        ...filters,
        limit: 50,
        cursor: pageParam,
      }),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextCursor || undefined,
  });
  const rows = transactions.data?.pages.flatMap((page) => page.items) ?? [];
  const columns: Array<Column<Transaction>> = [
    { key: 'order', header: t('transactions.order'), primary: true, render: (r) => <code>{r.orderId}</code> },
    {
      key: 'customer',
      header: t('transactions.customer'),
      render: (r) => (
        <Link to={`/portal/customers/${r.customerId}`} className="mono" onClick={(e) => e.stopPropagation()}>
          {r.customerPhone ?? r.customerId.slice(0, 8)}
        </Link>
      ),
    },
    {
      key: 'outlet',
      header: t('transactions.outlet'),
      render: (r) => r.outletName ?? <span className="muted">—</span>,
    },
    { key: 'total', header: t('transactions.total'), numeric: true, render: (r) => i18n.money(r.total) },
    {
      key: 'discount',
      header: t('transactions.discount'),
      numeric: true,
      render: (r) => i18n.money(r.discount),
    },
    {
      key: 'earned',
      header: t('transactions.earned'),
      numeric: true,
      render: (r) => i18n.num(r.earnedPoints),
    },
    {
      key: 'redeemed',
      header: t('transactions.redeemed'),
      numeric: true,
      render: (r) => i18n.num(r.redeemedPoints),
    },
    {
      key: 'refunded',
      header: t('transactions.refunded'),
      numeric: true,
      render: (r) => (r.refundedAmount ? i18n.money(r.refundedAmount) : <span className="muted">—</span>),
    },
    { key: 'status', header: t('common.status'), render: (r) => <TransactionStatus status={r.status} /> },
    {
      key: 'date',
      header: t('common.date'),
      render: (r) => <span className="nowrap">{i18n.dateTime(r.createdAt)}</span>,
    },
  ];

  const exportCsv = async () => {
    setExporting(true);
    try {
      await portalApi.download('/transactions.csv', filters, `transactions_${from}_${to}.csv`);
    } catch (error) {
      toast.error(error);
    } finally {
      setExporting(false);
    }
  };

  return (
    <div className="stack-lg">
      <PageHeader
        title={t('transactions.title')}
        subtitle={t('transactions.subtitle')}
        actions={
          canExport ? (
            <Button icon="download" busy={isExporting} onClick={exportCsv}>
              {t('transactions.export')}
            </Button>
          ) : null
        }
      />
      <div className="card card-body filters">
        <TextField label={t('common.from')} type="date" value={from} onChange={setFrom} />
        <TextField label={t('common.to')} type="date" value={to} onChange={setTo} />
        <SelectField
          label={t('transactions.outlet')}
          value={outletId}
          onChange={setOutletId}
          options={[
            { value: '', label: t('dashboard.allOutlets') },
            ...itemsOf(outlets.data).map((o) => ({ value: o.id, label: o.name })),
          ]}
        />
        <SelectField
          label={t('common.status')}
          value={status}
          onChange={setStatus}
          options={[
            { value: '', label: t('transactions.anyStatus') },
            { value: 'committed', label: t('transactions.status.committed') },
            { value: 'partially_refunded', label: t('transactions.status.partially_refunded') },
            { value: 'refunded', label: t('transactions.status.refunded') },
          ]}
        />
        <TextField
          label={t('transactions.search')}
          type="search"
          placeholder={t('transactions.searchPlaceholder')}
          value={q}
          onChange={setQ}
        />
      </div>
      <Card padded={false}>
        {transactions.isError ? (
          <ErrorState error={transactions.error} onRetry={() => transactions.refetch()} />
        ) : transactions.isPending ? (
          <Loading />
        ) : rows.length === 0 ? (
          <EmptyState
            icon="transactions"
            title={t('transactions.empty')}
            hint={t('transactions.emptyHint')}
          />
        ) : (
          <>
            <DataTable columns={columns} rows={rows} rowKey={(r) => r.id} />
            {transactions.hasNextPage ? (
              <div className="pager">
                <span>{t('transactions.loaded', { n: rows.length })}</span>
                <Button
                  size="sm"
                  busy={transactions.isFetchingNextPage}
                  onClick={() => transactions.fetchNextPage()}
                >
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
