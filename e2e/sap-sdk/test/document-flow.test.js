// SAP's own client reads the document flow: after a simulated delivery and billing (the
// emulator's admin API, reached as in faults.test.js: SAP_MOCK_ADMIN_URL or SAP_URL, with
// SAP_MOCK_ADMIN_TOKEN as bearer), the order's to_SubsequentProcFlowDoc holds the delivery (J)
// and the invoice (M), and the item's to_SubsequentProcFlowDocItem the same, with the SDK's
// own parsing of Edm.Guid (DocRelationshipUUID) and Edm.Time (CreationTime), which throws on a
// malformed value. Fails when the admin API cannot be reached; SAP_SDK_SKIP_FAULTS=1 skips it
// on purpose, as it skips the fault tests.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { BigNumber } = require('bignumber.js');
const { salesOrderService } = require('@sap/cloud-sdk-vdm-sales-order-service');

const { salesOrderApi, salesOrderItemApi, salesOrderSubsqntProcFlowApi } = salesOrderService();
const SO = salesOrderApi.schema;
const ITEM = salesOrderItemApi.schema;
const FLOW = salesOrderSubsqntProcFlowApi.schema;
const admin = process.env.SAP_MOCK_ADMIN_URL || process.env.SAP_URL;
const adminToken = process.env.SAP_MOCK_ADMIN_TOKEN;
const skip = process.env.SAP_SDK_SKIP_FAULTS === '1' ? 'SAP_SDK_SKIP_FAULTS=1 (skipped on purpose)' : false;

const destination = { url: process.env.SAP_URL };
if (process.env.SAP_USER) {
  destination.username = process.env.SAP_USER;
  destination.password = process.env.SAP_PASSWORD || '';
}
if (process.env.SAP_CLIENT) destination.sapClient = process.env.SAP_CLIENT;

function fulfil(step, salesOrder) {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json' };
    if (adminToken) headers.authorization = `Bearer ${adminToken}`;
    const req = http.request(`${admin}/sap-mock/admin/${step}`, { method: 'POST', headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(JSON.parse(body))
          : reject(new Error(`POST ${admin}/sap-mock/admin/${step} answered ${res.statusCode}: ${body}`))
      );
    });
    req.on('error', (e) =>
      reject(new Error(`the document flow test drives the emulator's admin API and cannot reach it at ${admin} (${e.message})`))
    );
    req.end(JSON.stringify({ SalesOrder: salesOrder }));
  });
}

test('after delivery and billing the client reads the delivery and the invoice from the document flow', { skip }, async () => {
  const created = await salesOrderApi
    .requestBuilder()
    .create(
      salesOrderApi
        .entityBuilder()
        .salesOrderType('OR')
        .salesOrganization('1010')
        .distributionChannel('10')
        .organizationDivision('00')
        .soldToParty('17100001')
        .purchaseOrderByCustomer(`SDK-FLOW-${Date.now()}`)
        .toItem([salesOrderItemApi.entityBuilder().material('TG11').requestedQuantity(new BigNumber(2)).build()])
        .build()
    )
    .execute(destination);
  const number = created.salesOrder;

  const empty = await salesOrderApi
    .requestBuilder()
    .getByKey(number)
    .select(SO.SALES_ORDER, SO.TO_SUBSEQUENT_PROC_FLOW_DOC)
    .execute(destination);
  assert.deepEqual(empty.toSubsequentProcFlowDoc, [], 'nothing follows an order not yet delivered');

  const delivery = (await fulfil('deliveries', number)).SubsequentDocument;
  const invoice = (await fulfil('billing', number)).SubsequentDocument;

  const order = await salesOrderApi
    .requestBuilder()
    .getByKey(number)
    .select(
      SO.SALES_ORDER,
      SO.OVERALL_ORD_RELTD_BILLG_STATUS,
      SO.TO_ITEM.select(ITEM.SALES_ORDER_ITEM),
      SO.TO_SUBSEQUENT_PROC_FLOW_DOC.select(
        FLOW.DOC_RELATIONSHIP_UUID,
        FLOW.SUBSEQUENT_DOCUMENT,
        FLOW.SUBSEQUENT_DOCUMENT_CATEGORY,
        FLOW.PROCESS_FLOW_LEVEL,
        FLOW.CREATION_DATE,
        FLOW.CREATION_TIME
      )
    )
    .execute(destination);
  assert.equal(order.overallOrdReltdBillgStatus, '', 'delivery-related billing: no billing status on the order');
  assert.equal(order.toItem.length, 1);
  const docs = order.toSubsequentProcFlowDoc.map((d) => [d.subsequentDocument, d.subsequentDocumentCategory]);
  assert.deepEqual(docs, [
    [delivery, 'J'],
    [invoice, 'M'],
  ]);
  for (const d of order.toSubsequentProcFlowDoc) {
    assert.match(d.docRelationshipUuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.ok(d.creationDate.isValid(), 'CreationDate parsed as a moment');
    assert.equal(typeof d.creationTime.hours, 'number', 'CreationTime parsed as an Edm.Time');
  }

  const item = await salesOrderItemApi
    .requestBuilder()
    .getByKey(number, '10')
    .select(ITEM.SALES_ORDER_ITEM, ITEM.TO_SUBSEQUENT_PROC_FLOW_DOC_ITEM)
    .execute(destination);
  assert.deepEqual(
    item.toSubsequentProcFlowDocItem.map((d) => [d.subsequentDocument, d.subsequentDocumentCategory]),
    [
      [delivery, 'J'],
      [invoice, 'M'],
    ]
  );
});
