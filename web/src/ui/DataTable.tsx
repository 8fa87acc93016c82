import { Fragment, type ReactNode } from 'react';

/** One column: header text, how a row renders in it, and how it behaves on phones. */
export interface Column<Row> {
  key: string;
  header: string;
  render: (row: Row) => ReactNode;
  /** Right-aligned tabular numbers. */
  numeric?: boolean;
  /** On phones the row's title line (no label). */
  primary?: boolean;
  /** Buttons: on phones a row of their own. */
  actions?: boolean;
}

/**
 * A table on wide screens that becomes a list of labelled cards on phones (each cell carries its
 * header in data-label, shown by CSS). `expanded` renders a full-width row under a row (details).
 */
export function DataTable<Row>({
  columns,
  rows,
  rowKey,
  onRowClick,
  expanded,
  caption,
}: {
  columns: Array<Column<Row>>;
  rows: Row[];
  rowKey: (row: Row) => string;
  onRowClick?: (row: Row) => void;
  expanded?: (row: Row) => ReactNode;
  caption?: string;
}) {
  return (
    <div className="table-wrap">
      <table className="table responsive">
        {caption ? <caption className="sr-only">{caption}</caption> : null}
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column.key} scope="col" className={column.numeric ? 'num' : undefined}>
                {column.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const detail = expanded?.(row);
            return (
              <Fragment key={rowKey(row)}>
                <tr
                  className={onRowClick ? 'clickable' : undefined}
                  onClick={onRowClick ? () => onRowClick(row) : undefined}
                  onKeyDown={
                    onRowClick
                      ? (event) => {
                          if (event.key === 'Enter') onRowClick(row);
                        }
                      : undefined
                  }
                  tabIndex={onRowClick ? 0 : undefined}
                >
                  {columns.map((column) => (
                    <td
                      key={column.key}
                      data-label={column.header}
                      className={
                        [
                          column.numeric ? 'num' : '',
                          column.primary ? 'cell-primary' : '',
                          column.actions ? 'cell-actions' : '',
                        ]
                          .filter(Boolean)
                          .join(' ') || undefined
                      }
                    >
                      {column.render(row)}
                    </td>
                  ))}
                </tr>
                {detail ? (
                  <tr>
                    <td colSpan={columns.length} className="cell-actions">
                      {detail}
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
