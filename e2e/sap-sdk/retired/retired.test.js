// SAP's own JavaScript client against a retired route with SAP stopped: the proxy alone
// answers the CSRF fetch (HEAD .../A_SalesOrder/), the logon, the create and the key read.
// Run by the proxy's integration test `retired_face::sap_s_javascript_client_creates_and_reads_...`
// with SAP_SDK_TESTS=retired/ (not part of the default test/ run: it needs a retired route).
//
// Environment: SAP_URL (the proxy), SAP_USER/SAP_PASSWORD (a user of PROXY_USERS_FILE),
// optional SAP_CLIENT.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const moment = require('moment');
const { BigNumber } = require('bignumber.js');
const { salesOrderService } = require('@sap/cloud-sdk-vdm-sales-order-service');

const { salesOrderApi, salesOrderItemApi } = salesOrderService();
const SO = salesOrderApi.schema;
const ITEM = salesOrderItemApi.schema;

const url = process.env.SAP_URL;
if (!url || !process.env.SAP_USER) {
  throw new Error('SAP_URL and SAP_USER/SAP_PASSWORD must name the proxy and a user of its SAP face');
}
const destination = {
  url,
  username: process.env.SAP_USER,
  password: process.env.SAP_PASSWORD || '',
};
if (process.env.SAP_CLIENT) {
  destination.sapClient = process.env.SAP_CLIENT;
}
const po = `SDK-RET-${Date.now()}-${process.pid}`;

function newOrder() {
  return salesOrderApi
    .entityBuilder()
    .salesOrderType('OR')
    .salesOrganization('1010')
    .distributionChannel('10')
    .organizationDivision('00')
    .soldToParty('17100001')
    .purchaseOrderByCustomer(po)
    .customerPurchaseOrderDate(moment.utc('2026-11-24', 'YYYY-MM-DD'))
    .toItem([
      salesOrderItemApi
        .entityBuilder()
        .material('TG11')
        .requestedQuantity(new BigNumber(2))
        .requestedQuantityUnit('PC')
        .build(),
    ])
    .build();
}

/** The HTTP response at the root of an ErrorWithCause chain. */
function rootResponse(err) {
  for (let e = err; e; e = e.cause) if (e.response) return e.response;
  return undefined;
}

let created;

test('with SAP stopped, the client fetches a token, creates an order and reads it by key', async () => {
  created = await salesOrderApi.requestBuilder().create(newOrder()).execute(destination);
  assert.match(created.salesOrder, /^\d+$/);
  assert.equal(created.purchaseOrderByCustomer, po);
  const read = await salesOrderApi
    .requestBuilder()
    .getByKey(created.salesOrder)
    .select(SO.ALL_FIELDS, SO.TO_ITEM.select(ITEM.ALL_FIELDS))
    .execute(destination);
  assert.equal(read.salesOrder, created.salesOrder);
  assert.equal(read.soldToParty, '17100001');
  assert.equal(read.purchaseOrderByCustomer, po);
  assert.equal(read.toItem.length, 1);
  assert.equal(read.toItem[0].material, 'TG11');
  assert.ok(read.toItem[0].requestedQuantity.isEqualTo(2));
});

test('a wrong password is refused with 401 and creates nothing', async () => {
  const wrong = { ...destination, password: `${destination.password}-wrong` };
  await assert.rejects(
    salesOrderApi.requestBuilder().create(newOrder()).execute(wrong),
    (err) => rootResponse(err)?.status === 401
  );
});
