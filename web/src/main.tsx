import './ui/styles.css';
import { lazy, StrictMode, Suspense } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter, Navigate, Route, Routes } from 'react-router';
import { I18nProvider } from './i18n';
import { Loading } from './ui/components';
import { ToastProvider } from './ui/Toasts';

// One bundle, three surfaces; each is its own chunk, so the Mini App never loads the portal's code.
const PortalApp = lazy(() => import('./portal/PortalApp'));
const AdminApp = lazy(() => import('./admin/AdminApp'));
const MiniApp = lazy(() => import('./miniapp/MiniApp'));

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <I18nProvider>
        <ToastProvider>
          <BrowserRouter>
            <Suspense fallback={<Loading />}>
              <Routes>
                <Route path="/portal/*" element={<PortalApp />} />
                <Route path="/admin/*" element={<AdminApp />} />
                <Route path="/miniapp/*" element={<MiniApp />} />
                <Route path="*" element={<Navigate to="/portal" replace />} />
              </Routes>
            </Suspense>
          </BrowserRouter>
        </ToastProvider>
      </I18nProvider>
    </StrictMode>,
  );
}
